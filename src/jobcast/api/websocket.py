"""WebSocket /jobs/{id}/ws: the job's events as JSON text frames (or raw output as binary frames
with `?format=raw`), and the client's input, resize, signal and cancel messages in the other way.

Outgoing frames are pre-encoded once per event (protocol.ws_event_frame) and written to the
transport joined, several frames per write; aiohttp's own writer is left for pings and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from aiohttp import WSMsgType, web

from ..errors import BadRequest, JobcastError
from ..models import OUTPUT_EVENTS, Event
from ..protocol import parse_ws_command, ws_event_frame, ws_frame
from .follow import TransportWriter, follow_job
from .http import query_int
from .state import STATE, Follower, State

__all__ = ["routes"]

routes = web.RouteTableDef()
log = logging.getLogger("jobcast.api.ws")


def _raw_frame(ev: Event) -> bytes:
    if ev.type not in OUTPUT_EVENTS or not ev.raw:
        return b""
    out = ev.cache.get("wsraw")
    if out is None:
        out = ev.cache["wsraw"] = ws_frame(ev.raw, binary=True)
    return out


@routes.get("/jobs/{ref}/ws")
async def job_ws(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    job = await state.store.get_job(request.match_info["ref"])
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "raw"):
        raise BadRequest(f"format must be `json` or `raw`, not {fmt!r}")
    b64 = request.query.get("encoding") == "base64"
    after = query_int(request, "after", 0) or 0

    ws = web.WebSocketResponse(
        compress=False, heartbeat=state.settings.heartbeat_seconds, max_msg_size=1 << 20
    )
    await ws.prepare(request)
    write = TransportWriter(request)

    def frame(ev: Event) -> bytes:
        return _raw_frame(ev) if fmt == "raw" else ws_event_frame(ev, b64=b64)

    follower = Follower("ws", job.id, request.transport)
    state.stats.add(follower)
    tag = "wsraw" if fmt == "raw" else ("ws64" if b64 else "ws")
    sender = asyncio.create_task(follow_job(state, follower, job.id, after, frame, tag, write))
    receiver = asyncio.create_task(_receive(state, ws, job.id, binary_input=fmt == "raw"))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        state.stats.remove(follower)
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, JobcastError):
                await task
        if not ws.closed:
            code = 1000 if sender.done() and not sender.cancelled() else 1001
            with contextlib.suppress(ConnectionError):
                await ws.close(
                    code=code, message=b"job complete" if code == 1000 else b"going away"
                )
    return ws


async def _receive(
    state: State, ws: web.WebSocketResponse, job_id: str, *, binary_input: bool
) -> None:
    async for msg in ws:
        try:
            if msg.type is WSMsgType.BINARY and binary_input:
                await state.supervisor.write_input(job_id, msg.data)
            elif msg.type is WSMsgType.TEXT:
                await _command(state, job_id, msg.data)
            elif msg.type is WSMsgType.BINARY:
                raise BadRequest(
                    "binary frames are input only with ?format=raw; send JSON text frames"
                )
        except JobcastError as e:
            await ws.send_str(orjson.dumps({"type": "error", **e.to_payload()}).decode())


async def _command(state: State, job_id: str, text: str) -> None:
    cmd = parse_ws_command(text)
    sup = state.supervisor
    if cmd.type == "input":
        await sup.write_input(job_id, cmd.data)
    elif cmd.type == "resize":
        await sup.resize(job_id, cmd.cols, cmd.rows)
    elif cmd.type == "signal":
        await sup.signal(job_id, cmd.signal)
    else:
        await sup.cancel(job_id, wait=False)
