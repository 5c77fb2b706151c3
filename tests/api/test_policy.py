"""The policy over HTTP, on a real server with a config file: safe mode and patterns refuse with
403 naming the rule (and a `policy.deny` trace entry), the queue limit answers 429 with
Retry-After, timeouts and the output cap are applied, and SIGHUP or an edit of the file reloads
the policy (and the log level, a flag staying above the file), a bad file keeping the old one."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, wait_job
from tests.helpers import wait_for

TEMPLATE = '[templates.hello]\ncommand = ["echo", "hello", "{who}"]\nparams.who = {}\n'


class Configured:
    """A server with a config file that the test rewrites."""

    def __init__(
        self, factory: type[ServerProcess], data_dir: Path, text: str, *flags: str
    ) -> None:
        self.cfg = data_dir.parent / "jobcast.toml"
        self.cfg.write_text(text)
        self.server = factory(data_dir, extra=["--config", str(self.cfg), *flags]).start()
        self.api = httpx.Client(base_url=self.server.url, headers=self.server.headers, timeout=30)

    def rewrite(self, text: str) -> None:
        self.cfg.write_text(text)

    def hup(self) -> None:
        assert self.server.proc is not None
        self.server.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def configured(server_factory: type[ServerProcess], data_dir: Path):
    made: list[Configured] = []

    def make(text: str, *flags: str) -> Configured:
        made.append(Configured(server_factory, data_dir, text, *flags))
        return made[-1]

    yield make
    for c in made:
        c.api.close()


def refused(api: httpx.Client, body: dict, status: int = 403) -> dict:
    r = api.post("/jobs", json=body)
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_safe_mode_refuses_raw_commands_naming_the_rule_and_traces_it(configured):
    c = configured('[policy]\nmode = "safe"\n' + TEMPLATE)
    for body in ({"command": "true"}, {"argv": ["true"]}):
        error = refused(c.api, body)
        assert error["code"] == "policy_denied" and error["rule"] == "mode=safe"
        assert "only templates may run" in error["message"] and "hello" in error["message"]
    r = c.api.post("/jobs", json={"template": "hello", "args": {"who": "you"}})
    assert r.status_code == 201
    assert wait_job(c.api, r.json()["id"])["status"] == "succeeded"
    entries = c.api.get("/trace", params={"op": "policy.deny"}).json()["entries"]
    assert len(entries) == 2
    assert {e["detail"]["rule"] for e in entries} == {"mode=safe"}
    assert {e["outcome"] for e in entries} == {"policy_denied"}
    assert c.api.get("/trace", params={"op": "job.create"}).json()["entries"][0]["outcome"] == "ok"


def test_deny_and_allow_patterns(configured):
    c = configured('[policy]\nallow = ["echo *", "true"]\ndeny = ["echo *secret*"]\n')
    assert c.api.post("/jobs", json={"argv": ["echo", "hi"]}).status_code == 201
    assert c.api.post("/jobs", json={"command": "true"}).status_code == 201
    error = refused(c.api, {"argv": ["echo", "the", "secret"]})
    assert error["rule"] == "deny[0]" and "'echo *secret*'" in error["message"]
    assert refused(c.api, {"argv": ["ls"]})["rule"] == "allow"


def test_a_full_queue_answers_429_with_retry_after(configured):
    c = configured("[policy]\nmax_running_jobs = 1\nmax_queued_jobs = 1\n")
    running = c.api.post("/jobs", json={"argv": ["sleep", "60"]}).json()
    queued = c.api.post("/jobs", json={"argv": ["true"]}).json()
    assert queued["status"] == "queued"
    r = c.api.post("/jobs", json={"argv": ["true"]})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "too_many_requests"
    assert "max_queued_jobs" in r.json()["error"]["message"]
    c.api.post(f"/jobs/{running['id']}/cancel")
    assert wait_job(c.api, queued["id"])["status"] == "succeeded"
    assert c.api.post("/jobs", json={"argv": ["true"]}).status_code == 201


def test_timeouts_and_the_output_cap_are_applied(configured):
    c = configured("[policy]\ndefault_timeout = 20\nmax_timeout = 40\nmax_output_bytes = 100\n")
    assert c.api.post("/jobs", json={"argv": ["true"]}).json()["timeout"] == 20
    assert c.api.post("/jobs", json={"argv": ["true"], "timeout": 5}).json()["timeout"] == 5
    assert refused(c.api, {"argv": ["true"], "timeout": 41})["rule"] == "max_timeout"
    assert refused(c.api, {"argv": ["true"], "max_output_bytes": 101})["rule"] == "max_output_bytes"
    loud = [sys.executable, "-c", "print('x' * 1000)"]
    job = wait_job(c.api, c.api.post("/jobs", json={"argv": loud}).json()["id"])
    assert job["stdout_bytes"] == 100 and job["dropped_bytes"] == 901


def test_sighup_reloads_and_a_bad_file_keeps_the_policy_in_force(configured):
    c = configured(TEMPLATE)
    assert c.api.post("/jobs", json={"argv": ["true"]}).status_code == 201
    c.rewrite('[policy]\nmode = "safe"\n' + TEMPLATE)
    c.hup()
    wait_for(lambda: c.api.post("/jobs", json={"argv": ["true"]}).status_code == 403)
    wait_for(lambda: "policy reloaded (mode safe" in c.server.output())
    c.rewrite('[policy]\nmode = "reckless"\n')
    c.hup()
    wait_for(lambda: "does not load" in c.server.output())
    assert "policy.mode" in c.server.output()
    assert refused(c.api, {"argv": ["true"]})["rule"] == "mode=safe"
    assert [t["name"] for t in c.api.get("/templates").json()["templates"]] == ["hello"]


def test_an_edit_of_the_config_file_reloads_it(configured):
    c = configured(TEMPLATE)
    c.rewrite('[policy]\ndeny = ["true"]\n' + TEMPLATE + '[templates.bye]\ncommand = ["true"]\n')
    wait_for(lambda: len(c.api.get("/templates").json()["templates"]) == 2)
    assert refused(c.api, {"argv": ["true"]})["rule"] == "deny[0]"


def test_jobs_per_token_are_limited(configured):
    # without auth every request is `local`'s: one token, as far as the limit goes
    c = configured("[policy]\nmax_jobs_per_token = 1\n")
    first = c.api.post("/jobs", json={"argv": ["sleep", "60"]}).json()
    error = refused(c.api, {"argv": ["true"]}, 429)
    assert "max_jobs_per_token" in error["message"]
    c.api.post(f"/jobs/{first['id']}/cancel")
    wait_for(lambda: c.api.post("/jobs", json={"argv": ["true"]}).status_code == 201)


def _followed(c: Configured) -> str:
    """A job run and its events read: a streaming client joins and leaves (a debug line each);
    its id, once the request's own line is in the log (the client's lines come before it)."""
    job = wait_job(c.api, c.api.post("/jobs", json={"argv": ["true"]}).json()["id"])["id"]
    assert c.api.get(f"/jobs/{job}/events").status_code == 200
    wait_for(lambda: f"GET /jobs/{job}/events 200" in c.server.output())
    return str(job)


def test_the_log_level_is_reloaded_and_a_change_logged_once(configured):
    c = configured('log_level = "info"\n')
    quiet = _followed(c)
    c.rewrite('log_level = "debug"\n')
    c.hup()
    wait_for(lambda: "log level info -> debug" in c.server.output())
    loud = _followed(c)
    c.rewrite('log_level = "info"\n')
    c.hup()
    wait_for(lambda: "log level debug -> info" in c.server.output())
    quiet_again = _followed(c)
    log = c.server.output()
    assert f"DEBUG jobcast.clients: sse client left job {loud} after" in log
    assert f"client joined job {loud}" in log
    assert f"client joined job {quiet}" not in log
    assert f"client joined job {quiet_again}" not in log
    # the watcher saw each edit as well as the SIGHUP: one line for each change all the same
    assert log.count("log level info -> debug") == 1 and log.count("log level debug -> info") == 1


def test_a_log_level_flag_stays_above_the_config_file(configured):
    c = configured('log_level = "debug"\n', "--log-level", "info")
    c.rewrite('log_level = "debug"\n' + TEMPLATE)
    c.hup()
    wait_for(lambda: "1 templates)" in c.server.output())
    job = _followed(c)
    log = c.server.output()
    assert f"client joined job {job}" not in log and "log level" not in log
