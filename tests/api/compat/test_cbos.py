"""The cbos profile (seed 002): its "Example Client" as written but for the URL, and each of its
messages with `websockets`, against a real server; sessions are jobs and watched typescripts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from tests.api.compat.conftest import CONFIG
from tests.conftest import ServerProcess, wait_job
from tests.helpers import run_async, wait_for

#: the document's "Example Client", as written
CLIENT = """
import asyncio
import json
import websockets

async def stream_client():
    async with websockets.connect("ws://127.0.0.1:32205/ws/stream") as ws:
        # Subscribe to all sessions
        await ws.send(json.dumps({
            "type": "subscribe",
            "sessions": ["*"]
        }))

        # Receive stream events
        async for message in ws:
            data = json.loads(message)

            if data["type"] == "stream":
                session = data["session"]
                content = data["data"]
                print(f"[{session}] {content}", end="")

asyncio.run(stream_client())
"""


@pytest.fixture
def streams(tmp_path: Path) -> Path:
    d = tmp_path / "claude_streams"
    d.mkdir()
    return d


@pytest.fixture
def cbos(server_factory: type[ServerProcess], data_dir: Path, streams: Path) -> ServerProcess:
    """As the cbos service ran: CBOS's own variables set, no token asked."""
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(CONFIG)
    env = {"CBOS_STREAM_STREAM_DIR": str(streams), "CBOS_STREAM_MAX_BUFFER_SIZE": "8"}
    extra = ["--auth", "none", "--config", str(cfg)]
    return server_factory(data_dir, extra=extra, env=env).start()


def _ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/compat/cbos/ws/stream"


def _clients(api: httpx.Client) -> int:
    return int(api.get("/compat/nstar/status").json()["clients"])


def test_the_documents_example_client(cbos: ServerProcess, streams: Path) -> None:
    code = CLIENT.replace("ws://127.0.0.1:32205", _ws_url(cbos).removesuffix("/ws/stream"))
    client = subprocess.Popen(
        [sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(client.stdout.read1, b"")))  # type: ignore[union-attr]
    reader.start()
    try:
        with httpx.Client(base_url=cbos.url, timeout=30) as api:
            # Whenever its subscription to "*" comes, this job is still running (it waits on
            # its stdin): created after it, or among the live jobs it takes from their start.
            wait_for(lambda: _clients(api) == 1)
            script = "echo hello; sleep 0.2; echo oops >&2; read done"
            job = api.post("/jobs", json={"name": "INFRA", "command": script, "stdin": True})
            wait_for(lambda: b"".join(seen) == b"[INFRA] hello\n[INFRA] oops\n", timeout=20)
            api.post(f"/jobs/{job.json()['id']}/cancel")
            (streams / "AUTH.typescript").write_bytes(b"Script started\r\n$ ls\r\n")
            want = b"[INFRA] hello\n[INFRA] oops\n[AUTH] Script started\r\n$ ls\r\n"
            wait_for(lambda: b"".join(seen) == want, timeout=20)
    finally:
        client.terminate()
        client.wait(10)
        reader.join(10)
        for pipe in (client.stdout, client.stderr):
            pipe.close()  # type: ignore[union-attr]
    assert b"".join(seen) == want


async def _recv(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of `kind` (others, output of other sessions, in between are skipped)."""
    while True:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        if msg["type"] == kind:
            return dict(msg)


async def _recv_each(ws: Any, kinds: set[str]) -> dict[str, dict[str, Any]]:
    """The first message of each of `kinds`, in whatever order they come."""
    got: dict[str, dict[str, Any]] = {}
    while set(got) != kinds:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        if msg["type"] in kinds:
            got.setdefault(msg["type"], msg)
    return got


def test_every_message_of_the_protocol(cbos: ServerProcess, streams: Path) -> None:
    api = httpx.Client(base_url=cbos.url, timeout=30)
    asker = "trap 'echo interrupted; exit 3' INT; read answer; echo got $answer; sleep 60 & wait"
    job = api.post("/jobs", json={"name": "INFRA", "command": asker, "stdin": True}).json()
    (streams / "AUTH.typescript").write_bytes(b"0123456789abcdef")
    wait_for(lambda: api.get("/jobs/AUTH").status_code == 200)

    async def run() -> None:
        async with websockets.connect(_ws_url(cbos)) as ws:
            hello = orjson.loads(await ws.recv())
            assert hello["type"] == "sessions"
            slugs = {s["slug"]: s for s in hello["sessions"]}
            assert slugs["INFRA"]["id"] == job["id"] and slugs["AUTH"]["kind"] == "source"
            available = orjson.loads(await ws.recv())
            assert available["type"] == "available_streams"
            assert {"INFRA", "AUTH"} <= set(available["sessions"])

            await ws.send(orjson.dumps({"type": "subscribe", "sessions": ["INFRA"]}).decode())
            assert await _recv(ws, "subscribed") == {"type": "subscribed", "sessions": ["INFRA"]}
            await ws.send(
                orjson.dumps({"type": "send", "session": "INFRA", "text": "yes"}).decode()
            )
            # The job's answer may come before or after the send's result.
            answers = await _recv_each(ws, {"send_result", "stream"})
            result, stream = answers["send_result"], answers["stream"]
            assert result == {"type": "send_result", "session": "INFRA", "success": True}
            assert stream["session"] == "INFRA" and stream["data"] == "got yes\n"
            assert isinstance(stream["ts"], float)

            # CBOS_STREAM_MAX_BUFFER_SIZE=8: the buffer is the typescript's last 8 bytes.
            await ws.send(orjson.dumps({"type": "get_buffer", "session": "AUTH"}).decode())
            buffer = await _recv(ws, "buffer")
            assert buffer == {"type": "buffer", "session": "AUTH", "data": "89abcdef"}

            await ws.send(orjson.dumps({"type": "interrupt", "session": "INFRA"}).decode())
            answers = await _recv_each(ws, {"interrupt_result", "stream"})
            result = answers["interrupt_result"]
            assert result == {"type": "interrupt_result", "session": "INFRA", "success": True}
            assert answers["stream"]["data"] == "interrupted\n"
            await ws.send(orjson.dumps({"type": "unsubscribe", "sessions": ["INFRA"]}).decode())
            assert (await _recv(ws, "unsubscribed"))["sessions"] in (["INFRA"], [])

            await ws.send(orjson.dumps({"type": "list_sessions"}).decode())
            listed = await _recv(ws, "sessions")
            assert {"INFRA", "AUTH"} <= {s["slug"] for s in listed["sessions"]}
            await _recv(ws, "available_streams")

            # Bad input: an error in the same shape, the connection still up.
            await ws.send("{not json")
            error = await _recv(ws, "error")
            assert error["code"] == "bad_request" and "JSON" in error["error"]
            await ws.send(orjson.dumps({"type": "subscribe", "session": "INFRA"}).decode())
            assert "sessions" in (await _recv(ws, "error"))["error"]
            await ws.send(orjson.dumps({"type": "send", "session": "NOPE", "text": "x"}).decode())
            failed = await _recv(ws, "send_result")
            assert failed["session"] == "NOPE" and failed["success"] is False
            assert "NOPE" in failed["error"]

    try:
        run_async(run())
        assert wait_job(api, job["id"])["exit_code"] == 3  # the trap's
    finally:
        api.close()
