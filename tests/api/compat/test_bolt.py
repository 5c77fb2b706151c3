"""The bolt profile (seed 001): per-execution SSE in the document's event format, against a real
server, read with real curl as its API notes do (`curl -N .../api/executions/ID/stream`)."""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime
from pathlib import Path

import httpx
import orjson

from jobcast.protocol import SSEParser
from tests.conftest import ServerProcess, wait_job
from tests.helpers import read_sse, wait_for


def curl_sse(url: str, *args: str) -> list:
    out = subprocess.run(["curl", "-sN", *args, url], capture_output=True, check=True, timeout=60)
    return SSEParser().feed(out.stdout)


def start(api: httpx.Client, command: str) -> str:
    r = api.post("/compat/bolt/api/executions", json={"command": command, "expertMode": True})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "running" and body["message"] == "Command execution started"
    return str(body["executionId"])


def test_an_executions_stream_in_the_documents_format(
    compat: ServerProcess, compat_api: httpx.Client
) -> None:
    ex = start(compat_api, "echo out; sleep 0.2; echo err >&2; sleep 0.2; exit 2")
    msgs = curl_sse(f"{compat.url}/compat/bolt/api/executions/{ex}/stream")  # ends by itself
    kinds = [m.event for m in msgs]
    assert kinds == ["start", "status", "command", "stdout", "stderr", "status", "error"]
    bodies = [orjson.loads(m.data) for m in msgs]
    for m, body in zip(msgs, bodies, strict=True):
        assert set(body) == {"type", "executionId", "timestamp", "data"}
        assert body["type"] == m.event and body["executionId"] == ex
        assert body["timestamp"].endswith("Z")
        datetime.fromisoformat(body["timestamp"])  # ISO 8601
    assert bodies[0]["data"] == {"message": "Connected to execution stream"}
    assert bodies[1]["data"] == {"status": "running"}
    assert bodies[2]["data"]["command"].endswith("exit 2'")
    assert (bodies[3]["data"], bodies[4]["data"]) == ({"output": "out\n"}, {"output": "err\n"})
    assert bodies[5]["data"] == {"status": "failed"}
    assert bodies[6]["data"]["exitCode"] == 2 and bodies[6]["data"]["error"]


def test_a_finished_execution_completes_at_once_and_an_unknown_one_is_404(
    compat: ServerProcess, compat_api: httpx.Client
) -> None:
    ex = start(compat_api, "echo done")
    wait_job(compat_api, ex)
    msgs = curl_sse(f"{compat.url}/compat/bolt/api/executions/{ex}/stream")
    assert [m.event for m in msgs][-2:] == ["status", "complete"]
    complete = orjson.loads(msgs[-1].data)["data"]
    assert complete["status"] == "success" and complete["exitCode"] == 0
    r = compat_api.get("/compat/bolt/api/executions/nope/stream")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "JOB_NOT_FOUND"
    r = compat_api.post("/compat/bolt/api/executions", json={"expertMode": True})
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"


def test_heartbeats_and_stats_while_streaming(compat: ServerProcess, compat_api: httpx.Client):
    """Heartbeat every 2 x heartbeat_seconds (30 s by default; the test server's is 1 s)."""
    ex = compat_api.post(
        "/compat/bolt/api/nodes/web1/command", json={"command": "sleep 30", "expertMode": True}
    ).json()["executionId"]
    assert compat_api.get(f"/jobs/{ex}").json()["labels"] == {"node": "web1"}
    assert compat_api.get("/compat/bolt/api/streaming/stats").json() == {"activeExecutions": 0}
    url = f"{compat.url}/compat/bolt/api/executions/{ex}/stream"
    proc = subprocess.Popen(["curl", "-sN", url], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines: list[bytes] = []
        threading.Thread(
            target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True
        ).start()
        stats = "/compat/bolt/api/streaming/stats"
        wait_for(lambda: compat_api.get(stats).json() == {"activeExecutions": 1})
        wait_for(lambda: b": heartbeat\n" in lines, timeout=20)
        assert compat_api.get("/stats").json()["clients"]["compat"] == 1
    finally:
        compat_api.post(f"/jobs/{ex}/cancel")
        proc.kill()
        proc.communicate()


def test_resume_with_last_event_id_gives_each_event_once(
    compat: ServerProcess, compat_api: httpx.Client
) -> None:
    ex = start(compat_api, "echo a; echo b >&2; echo c")
    wait_job(compat_api, ex)
    url = f"{compat.url}/compat/bolt/api/executions/{ex}/stream"
    everything = [m for m in read_sse(url) if m.id]
    for cut in range(len(everything) - 1):
        rest = [m for m in read_sse(url, {"Last-Event-ID": everything[cut].id}) if m.id]
        assert [(m.id, m.data) for m in rest] == [(m.id, m.data) for m in everything[cut + 1 :]]
    # Past the last: 204, after which EventSource stops reconnecting.
    last = httpx.get(url, headers={"Last-Event-ID": everything[-1].id})
    assert last.status_code == 204


def test_tokens_as_jobcast_takes_them(server_factory: type[ServerProcess], data_dir: Path) -> None:
    server = server_factory(data_dir).start()
    base = f"{server.url}/compat/bolt"
    r = httpx.post(f"{base}/api/executions", json={"command": "echo hi"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    r = httpx.post(f"{base}/api/executions", json={"command": "echo hi"}, headers=server.headers)
    assert r.status_code == 202
    ex = r.json()["executionId"]
    # EventSource sets no header: the token comes in the URL, as on jobcast's own streams.
    msgs = read_sse(f"{base}/api/executions/{ex}/stream?access_token={server.token}")
    assert msgs[-1].event == "complete"
