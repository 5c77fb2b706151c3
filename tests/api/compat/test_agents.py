"""The agents profile (seed 003): its JavaScript client in headless Chromium and its curl lines,
as written but for the URL, against a real server."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
import orjson
from playwright.sync_api import Page

from jobcast.protocol import SSEParser
from tests.conftest import ServerProcess, wait_job
from tests.helpers import read_sse, wait_for

#: the document's "JavaScript Client", as written
CLIENT = """
const agentName = 'codex-1';
const eventSource = new EventSource(`http://localhost:8151/api/agents/${agentName}/stream`);

// Connection opened
eventSource.onopen = () => {
  console.log('Connected to agent stream');
};

// Receive log lines
eventSource.addEventListener('log', (e) => {
  const data = JSON.parse(e.data);
  console.log(`[${data.data.line_num}] ${data.data.line}`);
});

// Receive extractions
eventSource.addEventListener('extraction', (e) => {
  const data = JSON.parse(e.data);
  console.log('Extracted:', data.data.pattern, '=', data.data.value);
});

// Agent completed
eventSource.addEventListener('complete', (e) => {
  const data = JSON.parse(e.data);
  console.log(`Agent completed with exit code ${data.data.exit_code}`);
  eventSource.close();
});

// Handle errors
eventSource.onerror = (error) => {
  console.error('SSE error:', error);
  eventSource.close();
};
"""

SCRIPT = "for i in 1 2 3; do echo Line $i; sleep 0.1; done; echo tokens=42 >&2; echo bye"


def create(api: httpx.Client, name: str = "codex-1", command: str = SCRIPT) -> str:
    body = {
        "name": name,
        "command": command,
        "extractors": [{"name": "tokens", "pattern": r"tokens=(\d+)"}],
    }
    r = api.post("/compat/agents/api/agents", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name
    return str(r.json()["id"])


def test_the_documents_javascript_client_in_chromium(
    compat: ServerProcess, compat_api: httpx.Client, page: Page
) -> None:
    create(compat_api)
    logged: list[str] = []
    page.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
    page.goto(f"{compat.url}/compat")  # a page of the same origin as the stream
    done = "Agent completed with exit code 0"
    with page.expect_console_message(lambda m: m.text == done, timeout=30_000):
        url = f"{compat.url}/compat/agents"
        page.add_script_tag(content=CLIENT.replace("http://localhost:8151", url))
    # (the browser's own request for /favicon.ico logs a 404: not the client's)
    assert not [m for m in logged if "SSE error" in m]
    assert [m for m in logged if m.startswith("log: ")] == [
        "log: Connected to agent stream",
        "log: [1] Line 1",
        "log: [2] Line 2",
        "log: [3] Line 3",
        "log: [4] tokens=42",
        "log: Extracted: tokens = 42",
        "log: [5] bye",
        "log: Agent completed with exit code 0",
    ]


def test_the_curl_lines_and_the_event_format(
    compat: ServerProcess, compat_api: httpx.Client, tmp_path: Path
) -> None:
    go = tmp_path / "go"  # the agent goes on once the three clients are counted
    create(compat_api, command=f"echo Line 1; until [ -e {go} ]; do sleep 0.05; done; echo Line 2")
    base = f"{compat.url}/compat/agents"
    # three clients at once, as its test suite had them
    procs = [
        subprocess.Popen(
            ["curl", "-N", f"{base}/api/agents/codex-1/stream"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    try:
        stats = lambda: orjson.loads(  # noqa: E731
            subprocess.run(["curl", "-s", f"{base}/api/sse/stats"], capture_output=True).stdout
        )
        wait_for(lambda: stats()["total_clients"] == 3)
        assert stats() == {"total_agents": 1, "total_clients": 3, "agents": {"codex-1": 3}}
        go.touch()
        outputs = [p.communicate(timeout=30)[0] for p in procs]  # each ends after `complete`
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    for out in outputs:
        msgs = SSEParser().feed(out)
        kinds = [m.event for m in msgs]
        assert kinds == ["connected", "state", "state", "log", "log", "state", "complete"]
        bodies = [orjson.loads(m.data) for m in msgs]
        for m, body in zip(msgs, bodies, strict=True):
            assert set(body) == {"type", "timestamp", "agent_name", "data"}
            assert (body["type"], body["agent_name"]) == (m.event, "codex-1")
        assert bodies[0]["data"]["message"] == "Connected to agent stream"
        assert bodies[0]["data"]["client_id"]
        assert [b["data"]["state"] for b in bodies if b["type"] == "state"] == [
            "queued",
            "started",
            "succeeded",
        ]
        assert [b["data"] for b in bodies if b["type"] == "log"] == [
            {"line": "Line 1", "line_num": 1, "stream": "stdout"},
            {"line": "Line 2", "line_num": 2, "stream": "stdout"},
        ]
        assert bodies[-1]["data"]["exit_code"] == 0 and bodies[-1]["data"]["duration"] > 0
    assert (
        len({orjson.loads(SSEParser().feed(o)[0].data)["data"]["client_id"] for o in outputs}) == 3
    )


def test_pings_while_idle_and_errors_in_its_shape(compat: ServerProcess, compat_api: httpx.Client):
    """A ping every heartbeat_seconds (15 s by default, as the document's; 1 s here)."""
    job = create(compat_api, name="idle", command="sleep 30")
    url = f"{compat.url}/compat/agents/api/agents/idle/stream"
    proc = subprocess.Popen(["curl", "-sN", url], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines: list[bytes] = []
        reader = threading.Thread(
            target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True
        )
        reader.start()
        wait_for(lambda: b"event: ping\n" in lines, timeout=20)
    finally:
        compat_api.post(f"/jobs/{job}/cancel")
        proc.kill()
        proc.communicate()
    r = compat_api.get("/compat/agents/api/agents/nope/stream")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = compat_api.post("/compat/agents/api/agents", json={"name": "x"})
    assert r.status_code == 422 and isinstance(r.json()["error"], str)


def test_resume_with_last_event_id_gives_each_message_once(
    compat: ServerProcess, compat_api: httpx.Client
) -> None:
    job = create(compat_api)
    wait_job(compat_api, job)
    url = f"{compat.url}/compat/agents/api/agents/codex-1/stream"
    everything = [m for m in read_sse(url) if m.id]
    assert [m.id for m in everything] == [str(i) for i in range(1, len(everything) + 1)]
    for cut in range(len(everything) - 1):
        rest = [m for m in read_sse(url, {"Last-Event-ID": everything[cut].id}) if m.id]
        assert [(m.id, m.data) for m in rest] == [(m.id, m.data) for m in everything[cut + 1 :]]
    # Past the last: 204, after which EventSource stops reconnecting.
    last = httpx.get(url, headers={"Last-Event-ID": everything[-1].id})
    assert last.status_code == 204
