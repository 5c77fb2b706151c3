"""WS /jobs/{id}/ws: JSON events, raw binary output, and input/signal/cancel messages."""

from __future__ import annotations

import asyncio
import signal

import httpx
import orjson
import websockets

from tests.conftest import wait_job
from tests.helpers import async_wait_for, collect_sse, wait_for


def ws_url(server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


async def test_json_events_then_close_after_complete(server, api):
    job = api.post("/jobs", json={"command": "echo one; echo two >&2"}).json()
    async with websockets.connect(
        ws_url(server, f"/jobs/{job['id']}/ws"), additional_headers=server.headers
    ) as ws:
        events = [orjson.loads(m) async for m in ws]
        assert ws.close_code == 1000
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "complete"
    assert "".join(e["data"]["text"] for e in events if e["type"] == "stdout") == "one\n"
    async with websockets.connect(
        ws_url(server, f"/jobs/{job['id']}/ws?after={events[-2]['seq']}"),
        additional_headers=server.headers,
    ) as ws:
        assert [orjson.loads(m)["seq"] async for m in ws] == [events[-1]["seq"]]


async def test_raw_format_sends_output_bytes_only(server, api):
    job = api.post("/jobs", json={"command": "printf '\\001\\002\\377'; printf x >&2"}).json()
    async with websockets.connect(
        ws_url(server, f"/jobs/{job['id']}/ws?format=raw"), additional_headers=server.headers
    ) as ws:
        frames = [m async for m in ws]
    assert all(isinstance(f, bytes) for f in frames)
    assert sorted(b"".join(frames)) == sorted(b"\x01\x02\xffx")


async def test_input_and_cancel_messages(server, api):
    job = api.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
    async with websockets.connect(
        ws_url(server, f"/jobs/{job['id']}/ws"), additional_headers=server.headers
    ) as ws:
        await ws.send(orjson.dumps({"type": "input", "data": "ping\n"}).decode())
        text = ""
        while "ping\n" not in text:
            ev = orjson.loads(await ws.recv())
            if ev["type"] == "stdout":
                text += ev["data"]["text"]
        await ws.send('{"type": "bogus"}')
        while (ev := orjson.loads(await ws.recv())).get("type") != "error":
            pass
        assert ev["error"]["code"] == "bad_request" and "bogus" in ev["error"]["message"]
        await ws.send('{"type": "cancel"}')
        events = [orjson.loads(m) async for m in ws]
    assert events[-1]["type"] == "complete" and events[-1]["data"]["status"] == "cancelled"


async def test_raw_binary_frames_are_input(server, api):
    job = api.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
    async with websockets.connect(
        ws_url(server, f"/jobs/{job['id']}/ws?format=raw"), additional_headers=server.headers
    ) as ws:
        await ws.send(b"\x00bin\n")
        got = b""
        while b"bin\n" not in got:
            got += await ws.recv()
        assert got == b"\x00bin\n"
        await ws.send('{"type": "signal", "signal": "TERM"}')
        wait_for(lambda: wait_job(api, job["id"])["signal"] == "SIGTERM")


async def test_unknown_job_is_refused_before_upgrade(server):
    import pytest

    with pytest.raises(websockets.exceptions.InvalidStatus) as e:
        async with websockets.connect(
            ws_url(server, "/jobs/nope/ws"), additional_headers=server.headers
        ):
            pass
    assert e.value.response.status_code == 404


async def test_clients_that_close_or_drop_are_forgotten(server, api):
    job = api.post("/jobs", json={"command": "while true; do echo tick; sleep 0.05; done"}).json()
    url = ws_url(server, f"/jobs/{job['id']}/ws")
    for polite in (True, False):
        clients = [
            await websockets.connect(url, additional_headers=server.headers) for _ in range(5)
        ]
        for ws in clients:
            await ws.recv()
        wait_for(lambda: api.get("/stats").json()["clients"]["ws"] == 5)
        for ws in clients:
            if polite:
                await ws.close()  # a close frame
            else:
                ws.transport.abort()  # the connection just drops
        wait_for(lambda: api.get("/stats").json()["clients"]["ws"] == 0, timeout=10)
    api.post(f"/jobs/{job['id']}/cancel")


async def test_sigterm_closes_every_stream_at_once(server_factory, data_dir):
    srv = server_factory(data_dir).start()
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.headers, timeout=30) as aapi:
        job = (await aapi.post("/jobs", json={"command": "exec sleep 60"})).json()
        sockets = [
            await websockets.connect(
                ws_url(srv, f"/jobs/{job['id']}/ws"), additional_headers=srv.headers
            )
            for _ in range(3)
        ]

        async def close_code(ws: websockets.ClientConnection) -> int | None:
            async for _ in ws:
                pass
            return ws.close_code

        readers = [asyncio.create_task(close_code(ws)) for ws in sockets]
        streams = [
            asyncio.create_task(collect_sse(aapi, url))
            for url in (f"/jobs/{job['id']}/events", f"/jobs/{job['id']}/events", "/stream")
        ]

        async def all_connected() -> bool:
            return (await aapi.get("/stats")).json()["clients"]["total"] == 6

        await async_wait_for(all_connected)
        srv.proc.send_signal(signal.SIGTERM)
        # Generous, but well under the ten seconds that each WebSocket used to add.
        assert await asyncio.to_thread(srv.proc.wait, 8) == 0
        assert await asyncio.gather(*readers) == [1001, 1001, 1001]
        for events in await asyncio.gather(*streams[:2]):
            assert events[-1]["type"] == "complete"
            assert events[-1]["data"]["status"] == "cancelled"
        await streams[2]  # the firehose ended too


def test_an_unknown_encoding_or_format_is_a_400_naming_it(api):
    job = api.post("/jobs", json={"command": "true"}).json()
    for path in (f"/jobs/{job['id']}/ws", f"/jobs/{job['id']}/events"):
        resp = api.get(path, params={"encoding": "utf16"})
        assert resp.status_code == 400 and "`encoding`" in resp.json()["error"]["message"]
    resp = api.get(f"/jobs/{job['id']}/ws", params={"format": "xml"})
    assert resp.status_code == 400 and "format" in resp.json()["error"]["message"]
