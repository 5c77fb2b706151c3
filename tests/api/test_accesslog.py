"""The server's own log, read from a real server's stderr: a line per request (method, path
without its query, status, duration, token name) and per job transition, as text or JSON, and
never a token, a job's environment or its input."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import ServerProcess, wait_job
from tests.helpers import wait_for

TOKEN = "ci-secret-0123456789abcdef"
ENV_VALUE = "env-value-never-logged-41"
INPUT = "input-never-logged-42"


def _start(server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path, *flags: str):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        f'[[tokens]]\nname = "ci"\ntoken = "{TOKEN}"\nscopes = ["read", "exec", "control"]\n'
    )
    return server_factory(data_dir, extra=["--config", str(cfg), *flags]).start()


def _exercise(s: ServerProcess) -> str:
    """A job with a secret in its environment and on its stdin, followed with the token in the
    URL (as a browser's EventSource sends it); the job's id."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        httpx.Client(base_url=s.url, headers=auth, timeout=30) as c,
        httpx.Client(base_url=s.url, timeout=30) as bare,
    ):
        body = {"argv": ["sh", "-c", "cat >/dev/null; exit 3"], "stdin": True}
        job = c.post("/jobs", json=body | {"env": {"SECRET": ENV_VALUE}}).json()
        c.post(f"/jobs/{job['id']}/input", json={"data": INPUT, "eof": True})
        assert wait_job(c, job["id"])["exit_code"] == 3
        r = bare.get(f"/jobs/{job['id']}/events", params={"access_token": TOKEN})
        assert r.status_code == 200
        # refused (the token may not come in this URL): logged all the same, without it
        assert bare.get("/jobs", params={"access_token": TOKEN}).status_code == 401
    return str(job["id"])


def _stopped_log(s: ServerProcess) -> str:
    """All the server wrote, once it has stopped (no line is then half written)."""
    s.stop()
    return (s.data_dir.parent / f"server-{s.port}.log").read_text()


def _no_secrets(log: str) -> None:
    for secret in (TOKEN, ENV_VALUE, INPUT):
        assert secret not in log


def test_text_log_has_a_line_per_request_and_per_transition(
    server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path
) -> None:
    s = _start(server_factory, data_dir, tmp_path)
    job = _exercise(s)
    wait_for(lambda: f"job {job} finished" in s.output() or None)
    log = s.output()
    events = re.search(rf"GET /jobs/{job}/events 200 (\d+\.\d)ms \(token ci\)", log)
    assert events is not None, log
    assert re.search(r"POST /jobs 201 \d+\.\dms \(token ci\)", log)
    assert re.search(r"GET /jobs 401 \d+\.\dms \(token anonymous\)", log)
    assert f"INFO jobcast.jobs: job {job} created" in log
    assert f"INFO jobcast.jobs: job {job} started" in log
    assert f"INFO jobcast.jobs: job {job} finished failed, exit code 3" in log
    assert "?" not in "".join(line for line in log.splitlines() if "jobcast.access" in line)
    _no_secrets(log)


def test_json_log_lines_parse_and_carry_their_fields(
    server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path
) -> None:
    s = _start(server_factory, data_dir, tmp_path, "--log-format", "json")
    job = _exercise(s)
    wait_for(lambda: f"job {job} finished" in s.output() or None)
    lines = [
        line for line in _stopped_log(s).splitlines() if not line.startswith("jobcast serving on")
    ]
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    requests = [r for r in records if r["logger"] == "jobcast.access"]
    follow = next(r for r in requests if r["path"] == f"/jobs/{job}/events")
    assert follow["method"] == "GET" and follow["status"] == 200 and follow["token"] == "ci"
    assert isinstance(follow["duration_ms"], float) and follow["duration_ms"] >= 0
    jobs = {r["event"]: r for r in records if r["logger"] == "jobcast.jobs" and r["job"] == job}
    assert set(jobs) == {"job.created", "job.started", "job.finished"}
    assert jobs["job.finished"]["status"] == "failed" and jobs["job.finished"]["exit_code"] == 3
    _no_secrets("\n".join(lines))


def test_the_log_level_holds_back_what_is_below_it(
    server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path
) -> None:
    s = _start(server_factory, data_dir, tmp_path, "--log-level", "warning")
    _exercise(s)
    log = _stopped_log(s)
    assert "jobcast.access" not in log and "jobcast.jobs" not in log


@pytest.mark.parametrize("flags", [["--log-format", "xml"], ["--log-level", "loud"]])
def test_a_bad_log_setting_is_refused_at_start(tmp_path: Path, flags: list[str]) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "jobcast", "serve", "--data-dir", str(tmp_path / "d"), *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert flags[0].removeprefix("--").replace("-", "_") in done.stderr
