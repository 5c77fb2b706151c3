"""The nstar profile (seed 000): its README's curl lines and client verbs, as written, against a
real server; its firehose in the shape its web page reads (`onmessage`), resumed exactly once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.conftest import ServerProcess, free_port, wait_job
from tests.helpers import read_sse, wait_for


def curl(*args: str) -> dict | list:
    out = subprocess.run(["curl", "-s", *args], capture_output=True, check=True, timeout=60)
    return orjson.loads(out.stdout)


def test_the_readmes_curl_lines(compat: ServerProcess) -> None:
    base = f"{compat.url}/compat/nstar"
    status = curl(f"{base}/status")
    assert isinstance(status, dict) and status["server"] == "jobcast" and status["uptime"] >= 0
    assert status["runningJobs"] == 0

    json = ["-H", "Content-Type: application/json"]
    chat = curl("-X", "POST", f"{base}/chat", *json, "-d", '{"message":"test goal","stream":true}')
    assert isinstance(chat, dict)
    assert (chat["exitCode"], chat["stdout"], chat["status"]) == (
        0,
        "chat: test goal\n",
        "succeeded",
    )
    assert chat["result"] == {"raw_stdout": "chat: test goal\n", "raw_stderr": ""}

    body = '{"command":"EXECUTE test --fast","stream":true}'
    direct = curl("-X", "POST", f"{base}/direct", *json, "-d", body)
    assert isinstance(direct, dict) and direct["exitCode"] == 0
    assert direct["stdout"] == "testing --fast\n" and direct["stderr"] == "slow\n"

    pasted = curl("-X", "POST", f"{base}/paste", *json, "-d", '{"text":"context content"}')
    digest = hashlib.sha256(b"context content").hexdigest()
    assert pasted == {"id": digest, "ref": f"ctx://paste/{digest}", "size": 15}
    assert httpx.get(f"{compat.url}/pastes/{digest}").text == "context content"

    trace = curl(f"{base}/trace?limit=10")
    assert isinstance(trace, list) and 0 < len(trace) <= 10
    seqs = [e["seq"] for e in trace]
    assert seqs == sorted(seqs)  # oldest first, as nstar's last N lines of its ledger
    # (the ledger records a job's end as it sees it: the paste may come before the direct's end)
    assert "paste.create" in [e["op"] for e in trace[-2:]]
    created = curl(f"{base}/trace?limit=20&mode=job.create")
    assert [e["job"] for e in created] == [chat["jobId"], direct["jobId"]]
    by_template = curl(f"{base}/trace?limit=20&mode=test")
    assert [e["job"] for e in by_template] == [direct["jobId"]]


def test_errors_are_nstars_shape(compat: ServerProcess) -> None:
    base = f"{compat.url}/compat/nstar"
    r = httpx.post(f"{base}/direct", json={"command": "nope"})
    assert r.status_code == 422
    assert isinstance(r.json()["error"], str) and "nope" in r.json()["error"]
    r = httpx.post(f"{base}/chat", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and isinstance(r.json()["error"], str)


def _firehose_until_done(url: str, job: str, headers: dict[str, str] | None = None) -> list:
    def done(msgs: list) -> bool:
        return any(
            orjson.loads(m.data)["type"] in ("job_complete", "job_error")
            and orjson.loads(m.data)["data"]["jobId"] == job
            for m in msgs
        )

    return read_sse(url, headers, stop=done)


def test_the_stream_as_its_web_page_reads_it(
    compat: ServerProcess, compat_api: httpx.Client
) -> None:
    url = f"{compat.url}/compat/nstar/stream"
    proc = subprocess.Popen(["curl", "-sN", url], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline() + proc.stdout.readline() + proc.stdout.readline()
        assert b": connected" in first  # the stream is open: what follows is live
        job = compat_api.post("/compat/nstar/chat", json={"message": "hi"}).json()["jobId"]
        seen: list[dict] = []
        while not any(m["type"] == "job_complete" for m in seen):
            line = proc.stdout.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                seen.append(orjson.loads(line[6:]))
    finally:
        proc.kill()
        proc.communicate()
    assert seen[0]["type"] == "connected"
    mine = [m for m in seen[1:] if m["type"] != "trace" and m["data"].get("jobId") == job]
    assert [m["type"] for m in mine] == ["job_start", "job_stdout", "job_complete"]
    assert mine[1]["data"]["chunk"] == "chat: hi\n"
    assert mine[2]["data"]["exitCode"] == 0
    # the ledger says who did what: its entry for the job is in the stream, before the job ends
    assert "job.create" in {m["data"]["op"] for m in seen if m["type"] == "trace"}


def test_resume_with_last_event_id_gives_each_message_once(
    compat: ServerProcess, compat_api: httpx.Client
) -> None:
    url = f"{compat.url}/compat/nstar/stream"
    job = compat_api.post("/jobs", json={"command": "echo a; echo b >&2; echo c; exit 3"}).json()
    wait_job(compat_api, job["id"])
    everything = [m for m in _firehose_until_done(url, job["id"], {"Last-Event-ID": "0"}) if m.id]
    assert [orjson.loads(m.data)["type"] for m in everything][-1] == "job_error"
    # every point but the last, after which nothing of this job comes to stop the reading at
    for cut in range(len(everything) - 1):
        rest = [
            m
            for m in _firehose_until_done(url, job["id"], {"Last-Event-ID": everything[cut].id})
            if m.id
        ]
        assert [(m.id, m.data) for m in rest] == [(m.id, m.data) for m in everything[cut + 1 :]]


def test_the_client_verbs(compat: ServerProcess, tmp_path: Path) -> None:
    env = {**os.environ, "JOBCAST_URL": compat.url}

    def jobcast(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        cmd = [sys.executable, "-m", "jobcast", *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=60)

    watcher = subprocess.Popen(
        [sys.executable, "-m", "jobcast", "stream"], stdout=subprocess.PIPE, env=env
    )
    try:
        # It follows from now on: the job is started once its firehose is connected.
        stats = f"{compat.url}/stats"
        wait_for(lambda: httpx.get(stats).json()["clients"]["stream"] == 1, timeout=30)
        chat = jobcast("chat", "Add documentation --mode=safe")
        assert chat.returncode == 0, chat.stderr
        assert chat.stdout == b"chat: Add documentation --mode=safe\n"
        assert watcher.stdout is not None
        lines = []
        while not any(b"chat: Add documentation" in line for line in lines):
            lines.append(watcher.stdout.readline())
            assert lines[-1], "jobcast stream ended"
    finally:
        watcher.kill()
        watcher.communicate()
    direct = jobcast("direct", "EXECUTE test --fast")
    assert direct.returncode == 0 and direct.stdout == b"testing --fast\n", direct.stderr
    pasted = jobcast("paste", stdin=b"Large context...\n")
    digest = hashlib.sha256(b"Large context...\n").hexdigest()
    assert pasted.stdout.decode().strip() == f"ctx://paste/{digest}"
    trace = jobcast("trace", "2")
    assert trace.returncode == 0 and len(trace.stdout.decode().splitlines()) == 2
    assert "paste.create" in trace.stdout.decode()


def test_port_is_honoured_when_jobcast_port_is_unset(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")} | {
        "PORT": str(port)
    }
    cmd = [sys.executable, "-m", "jobcast", "serve", "--auth", "none", "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/compat/nstar/status").status_code == 200
            except httpx.TransportError:
                time.sleep(0.05)
                return False

        wait_for(up, timeout=20)
    finally:
        proc.terminate()
        proc.wait(30)
