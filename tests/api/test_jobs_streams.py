"""POST /jobs against a real server: stdout and stderr in order, or merged; programs that cannot
run exit 127/126 with an `error` event, whether run as argv or by the shell."""

from __future__ import annotations

import sys

import httpx
import orjson
import pytest

from jobcast.protocol import SSEParser
from tests.conftest import wait_job
from tests.runner.test_process import ALTERNATE, alternating


def events(api: httpx.Client, job_id: str) -> list[dict]:
    """A finished job's events: its SSE stream ends after `complete`."""
    body = api.get(f"/jobs/{job_id}/events").content
    return [orjson.loads(msg.data) for msg in SSEParser().feed(body)]


def output_lines(evs: list[dict]) -> list[tuple[str, int]]:
    out = [e for e in evs if e["type"] in ("stdout", "stderr")]
    return [(e["type"], int(n)) for e in out for n in e["data"]["text"].split()]


def test_stdout_and_stderr_events_follow_the_order_of_writes(server_factory, data_dir):
    # A window longer than ALTERNATE waits for a write to be read: only reads as the streams are
    # written, not once per window, keep the order.
    server = server_factory(data_dir, extra=["--batch-window-ms", "500"]).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        job = api.post("/jobs", json={"argv": [sys.executable, "-c", ALTERNATE, "16"]}).json()
        assert wait_job(api, job["id"])["status"] == "succeeded"
        want = [(stream.value, i) for stream, i in alternating(16)]
        assert output_lines(events(api, job["id"])) == want


def test_merged_stderr_is_exact_and_all_stdout(api):
    script = "for i in $(seq 1 500); do echo out$i; echo err$i >&2; done"
    job = api.post("/jobs", json={"command": script, "stderr": "merge"}).json()
    done = wait_job(api, job["id"])
    assert (done["status"], done["stderr_bytes"]) == ("succeeded", 0)
    want = b"".join(b"out%d\nerr%d\n" % (i, i) for i in range(1, 501))
    assert api.get(f"/jobs/{job['id']}/log").content == want
    evs = events(api, job["id"])
    assert {e["type"] for e in evs if e["type"] in ("stdout", "stderr")} == {"stdout"}
    assert [e["data"].get("stderr") for e in evs if e["type"] == "command"] == ["merge"]


def test_stderr_takes_pipe_or_merge_only(api):
    r = api.post("/jobs", json={"command": "true", "stderr": "both"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_failed" and "stderr" in error["message"]


def test_the_openapi_describes_stderr_and_inherit_env(api):
    props = api.get("/openapi.json").json()["components"]["schemas"]["JobSpec"]["properties"]
    assert props["stderr"]["enum"] == ["pipe", "merge"] and props["stderr"]["default"] == "pipe"
    assert props["inherit_env"]["type"] == "boolean" and props["inherit_env"]["default"] is True


def test_inherit_env_false_gives_the_job_only_its_env(server_factory, data_dir):
    server = server_factory(data_dir, env={"ONLY_ON_SERVER": "s"}).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        script = 'echo "${ONLY_ON_SERVER-unset} $A $PWD"'
        body = {"command": script, "env": {"A": "1"}, "inherit_env": False, "cwd": "/"}
        job = api.post("/jobs", json=body).json()
        assert wait_job(api, job["id"])["status"] == "succeeded"
        assert api.get(f"/jobs/{job['id']}/log").content == b"unset 1 /\n"


@pytest.mark.parametrize(
    "body",
    [{"argv": ["no-such-program-jobcast"]}, {"command": "no-such-program-jobcast --flag"}],
    ids=["argv", "shell"],
)
def test_a_missing_program_exits_127_with_an_error_event(api, body):
    job = api.post("/jobs", json=body).json()
    done = wait_job(api, job["id"])
    assert (done["status"], done["exit_code"]) == ("failed", 127)
    evs = events(api, job["id"])
    [error] = [e["data"] for e in evs if e["type"] == "error"]
    assert error["code"] == "command_not_found"
    assert error["message"].startswith("command not found: no-such-program-jobcast")
    assert evs[-1]["type"] == "complete" and evs[-1]["data"]["exit_code"] == 127
