"""The nebula profile (seed 004): its `io(...)` snippet under Node with socket.io-client from the
npm registry, its `wscat` line's plain WebSocket with `websockets`, python-socketio's client for
the other token forms, and its cancel `curl`, against a real server with tokens."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import socketio  # type: ignore[import-untyped]
import websockets

from tests.conftest import ServerProcess, wait_job
from tests.helpers import run_async, wait_for

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = Path(__file__).with_name("node")

#: the document's "Frontend: Connect to Stream", as written
SNIPPET = """
const socket = io('http://localhost:4000', {
  path: '/runs',
  auth: { token: 'your-token' },
  query: { runId: 'run-123' },
});

socket.on('run-event', (event) => {
  if (event.type === 'stdout') {
    console.log(event.data);
  }
});
"""

SCRIPT = "echo Hello, World!; sleep 0.2; echo Error occurred >&2; sleep 0.2; echo bye"
#: what every client of a run of SCRIPT is sent, in order
EVENTS = [
    {"type": "status", "data": "queued"},
    {"type": "status", "data": "running"},
    {"type": "stdout", "data": "Hello, World!\n"},
    {"type": "stderr", "data": "Error occurred\n"},
    {"type": "stdout", "data": "bye\n"},
    {"type": "status", "data": "succeeded"},
]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """socket.io-client installed from the lock (quick when it already is)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "node-tests.sh")], check=True, timeout=300)
    return NODE_DIR / "node_modules"


def _run(api: httpx.Client, command: str = SCRIPT) -> str:
    job = api.post("/jobs", json={"command": command}).json()
    return str(job["id"])


@pytest.fixture
def api(server: ServerProcess) -> Any:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
        yield client


@pytest.mark.timeout(60)
def test_the_documents_io_snippet_under_node(
    server: ServerProcess, api: httpx.Client, node_modules: Path
) -> None:
    run_id = _run(api)
    wait_job(api, run_id)
    code = SNIPPET.replace("http://localhost:4000", server.url)
    code = code.replace("'/runs'", "'/compat/nebula/runs'")
    code = code.replace("your-token", str(server.token)).replace("run-123", run_id)
    code = "const { io } = require('socket.io-client');\n" + code
    client = subprocess.Popen(
        ["node", "-e", code], cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        # console.log of each stdout chunk: the run's lines, each followed by log's own newline
        out = b""
        while not out.endswith(b"bye\n\n"):
            chunk = client.stdout.read1()  # type: ignore[union-attr]
            assert chunk, client.stderr.read().decode()  # type: ignore[union-attr]
            out += chunk
        assert out == b"Hello, World!\n\nbye\n\n"
    finally:
        client.terminate()
        client.wait(10)
        for pipe in (client.stdout, client.stderr):
            pipe.close()  # type: ignore[union-attr]


def test_the_plain_websocket_of_the_wscat_line(server: ServerProcess, api: httpx.Client) -> None:
    run_id = _run(api)
    url = f"ws://127.0.0.1:{server.port}/compat/nebula/runs?runId={run_id}&token={server.token}"

    async def follow() -> tuple[list[dict], int | None]:
        async with websockets.connect(url) as ws:
            got = [orjson.loads(m) async for m in ws]
            return got, ws.close_code

    got, code = run_async(follow())
    assert got == EVENTS and code == 1000  # live from its start to its end, then closed

    async def refused(url: str) -> int:
        with pytest.raises(websockets.InvalidStatus) as e:
            async with websockets.connect(url):
                pass
        return int(e.value.response.status_code)

    assert run_async(refused(url.replace(str(server.token), "wrong"))) == 401
    assert run_async(refused(url.replace(run_id, "run-123"))) == 404


def test_every_token_form_and_the_lifecycle_to_cancelled(
    server: ServerProcess, api: httpx.Client
) -> None:
    run_id = _run(api, "echo started; sleep 60")

    async def follow(**how: Any) -> list[dict]:
        got: list[dict] = []
        client = socketio.AsyncClient()
        client.on("run-event", got.append)
        url = f"{server.url}?runId={run_id}" + how.pop("query", "")
        await client.connect(url, socketio_path="/compat/nebula/runs", **how)
        try:
            await asyncio.wait_for(
                _until(lambda: {"type": "stdout", "data": "started\n"} in got), 20
            )
        finally:
            await client.disconnect()
        return got

    token = str(server.token)
    for how in (
        {"auth": {"token": token}},
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"query": f"&token={token}", "transports": ["websocket"]},
    ):
        assert run_async(follow(**how)) == [*EVENTS[:2], {"type": "stdout", "data": "started\n"}]

    async def refused(run: str, auth: dict) -> list[Any]:
        errors: list[Any] = []
        client = socketio.AsyncClient()
        client.on("connect_error", errors.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                f"{server.url}?runId={run}", socketio_path="/compat/nebula/runs", auth=auth
            )
        return errors

    assert run_async(refused(run_id, {"token": "wrong"})) == [{"message": "the token is not valid"}]
    assert run_async(refused("run-123", {"token": token})) == [
        {"message": "run 'run-123' not found"}
    ]

    # The document's `curl -X POST .../runs/ID/cancel`, with a token; the client sees it end.
    async def cancelled() -> list[dict]:
        got: list[dict] = []
        client = socketio.AsyncClient()
        client.on("run-event", got.append)
        await client.connect(
            f"{server.url}?runId={run_id}",
            socketio_path="/compat/nebula/runs",
            auth={"token": token},
        )
        try:
            await _until(lambda: len(got) >= 3)
            answer = await asyncio.to_thread(api.post, f"/compat/nebula/runs/{run_id}/cancel")
            assert answer.json() == {"runId": run_id, "status": "cancelled"}
            await asyncio.wait_for(_until(lambda: got[-1]["data"] == "cancelled"), 20)
        finally:
            await client.disconnect()
        return got

    assert [e["data"] for e in run_async(cancelled()) if e["type"] == "status"] == [
        "queued",
        "running",
        "cancelled",
    ]
    missing = api.post("/compat/nebula/runs/run-123/cancel")
    assert missing.status_code == 404
    assert missing.json() == {
        "statusCode": 404,
        "message": missing.json()["message"],
        "error": "Not Found",
    }
    assert "run-123" in missing.json()["message"]
    wait_for(lambda: api.get(f"/jobs/{run_id}").json()["status"] == "cancelled")


async def _until(condition: Any) -> None:
    # The clients' handlers fill plain lists: looked at until they hold what is awaited.
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
