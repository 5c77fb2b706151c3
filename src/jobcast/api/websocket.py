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

from ..config import Scope
from ..errors import BadRequest, JobcastError, JobNotFound
from ..models import OUTPUT_EVENTS, Event
from ..protocol import parse_ws_command, ws_event_frame, ws_frame
from .auth import ANONYMOUS, IDENTITY, TOKENS, Identity, authenticate_socket, visible_job
from .control import check_control, may_control, strip_terminal_replies
from .follow import TransportWriter, follow_job
from .http import query_b64, query_int
from .ledger import record, traced
from .lines import follow_lines, line_query, wants_lines, ws_item
from .state import STATE, Follower

__all__ = ["routes"]

routes = web.RouteTableDef()
log = logging.getLogger("jobcast.api.ws")


def _raw_frame(ev: Event) -> bytes:
    if ev.type not in OUTPUT_EVENTS or not ev.raw:
        return b""
    out = ev.cache.get("wsraw")
    if out is None:
        out = ev.remember("wsraw", ws_frame(ev.raw, binary=True))
    return out


@routes.get("/jobs/{ref}/ws", allow_head=False)
async def job_ws(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    identity = request[IDENTITY]
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "raw"):
        raise BadRequest(f"format must be `json` or `raw`, not {fmt!r}")
    b64 = query_b64(request)
    after = query_int(request, "after", 0) or 0
    lines = line_query(request) if wants_lines(request) else None
    if lines is not None and fmt == "raw":
        raise BadRequest("`view=lines` sends JSON frames; leave out `format=raw`")

    # Only the id is kept: a Job model held for the stream's life would cost ~3 KiB a client.
    # Without a token yet (it comes in the first message), whether the job exists is told later.
    job_id = None if identity is ANONYMOUS else (await visible_job(request)).id
    ws = await open_socket(request)
    if job_id is None:
        authenticated = await authenticate_socket(ws, request.app[TOKENS], Scope.READ, request)
        if authenticated is None:
            return ws
        identity = request[IDENTITY] = authenticated  # the trace's `who` from here on
        try:
            job_id = (await visible_job(request, identity)).id
        except JobNotFound as e:
            await ws.send_str(orjson.dumps({"type": "error", **e.to_payload()}).decode())
            await ws.close(code=4404, message=b"no such job")
            return ws
    write = TransportWriter(request)

    def frame(ev: Event) -> bytes:
        return _raw_frame(ev) if fmt == "raw" else ws_event_frame(ev, b64=b64)

    follower = Follower("ws", job_id, request.transport)
    state.stats.add(follower)
    tag = "wsraw" if fmt == "raw" else ("ws64" if b64 else "ws")
    # The events go out from this handler's own task and the client's messages come in on one
    # more: a task fewer per connection than a sender beside them (memory per idle client).
    receiver = asyncio.create_task(
        _receive(request, ws, job_id, identity, binary_input=fmt == "raw")
    )

    def left(_: object) -> None:
        write.transport.close()  # the client closed or broke off: following stops at the tick

    receiver.add_done_callback(left)
    complete = False
    try:
        if lines is not None:
            complete = await follow_lines(state, follower, job_id, lines, ws_item, write)
        else:
            complete = await follow_job(state, follower, job_id, after, frame, tag, write)
    except (ConnectionError, JobcastError):
        pass
    finally:
        state.stats.remove(follower)
        receiver.remove_done_callback(left)
        if not ws.closed and not write.transport.is_closing():
            # 1001 whenever the server goes away, even after `complete`: the client should not
            # come back here. Closed while the receiver still waits for a message, aiohttp hands
            # it the close and does not wait for the client's answer, which during shutdown it
            # would never read (the connection ignores input by then): 10 s a connection.
            done = complete and not state.stopping
            with contextlib.suppress(ConnectionError):
                await ws.close(
                    code=1000 if done else 1001, message=b"job complete" if done else b"going away"
                )
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, JobcastError):
            await receiver
        release(ws)
    return ws


async def open_socket(request: web.Request) -> web.WebSocketResponse:
    """The WebSocket answer to `request`, prepared: the server's heartbeat, frames up to 1 MiB
    (a `send` of a paste fits; a bigger one closes the connection, 1009, saying so)."""
    heartbeat = request.app[STATE].settings.heartbeat_seconds
    ws = web.WebSocketResponse(compress=False, heartbeat=heartbeat, max_msg_size=1 << 20)
    if not ws.can_prepare(request).ok:
        # aiohttp's own refusal is a text/plain 400; every error here is the JSON shape.
        raise BadRequest("this endpoint is a WebSocket: connect with an Upgrade: websocket request")
    await ws.prepare(request)
    return ws


def release(ws: web.WebSocketResponse) -> None:
    """Cut the reference cycles aiohttp leaves behind a socket dropped without a close frame,
    so its memory goes as it closes: the error it kept, whose traceback holds the frames that
    raised it, and those the request (the server's garbage collection is the backstop)."""
    reader = getattr(ws, "_reader", None)  # private: if aiohttp renames it, the backstop stays
    for holder in (ws, reader):
        exc = holder.exception() if holder is not None else None
        if exc is not None:
            exc.__traceback__ = None


async def _receive(
    request: web.Request,
    ws: web.WebSocketResponse,
    job_id: str,
    identity: Identity,
    *,
    binary_input: bool,
) -> None:
    state = request.app[STATE]
    async for msg in ws:
        try:
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                job = await state.store.get_job(job_id)
                if not may_control(state, identity, job):
                    if msg.type is WSMsgType.BINARY and not strip_terminal_replies(msg.data):
                        continue  # a viewer's terminal answering the output: not for the job
                    check_control(
                        state, identity, job, "input, resize, signal, interrupt and cancel messages"
                    )
            if msg.type is WSMsgType.BINARY and binary_input:
                async with traced(request, "job.input", job_id, bytes=len(msg.data), eof=False):
                    await state.supervisor.write_input(job_id, msg.data)
            elif msg.type is WSMsgType.TEXT:
                await _command(request, job_id, msg.data)
            elif msg.type is WSMsgType.BINARY:
                raise BadRequest(
                    "binary frames are input only with ?format=raw; send JSON text frames"
                )
        except JobcastError as e:
            await ws.send_str(orjson.dumps({"type": "error", **e.to_payload()}).decode())


async def _command(request: web.Request, job_id: str, text: str) -> None:
    cmd = parse_ws_command(text)
    sup = request.app[STATE].supervisor
    if cmd.type == "input":
        async with traced(request, "job.input", job_id, bytes=len(cmd.data), eof=False):
            await sup.write_input(job_id, cmd.data)
    elif cmd.type == "resize":
        await sup.resize(job_id, cmd.cols, cmd.rows)
    elif cmd.type == "signal":
        async with traced(request, "job.signal", job_id, signal=cmd.signal[:32]) as op:
            op.detail["signal"] = await sup.signal(job_id, cmd.signal)
    elif cmd.type == "interrupt":
        async with traced(request, "job.interrupt", job_id) as op:
            op.detail["how"] = await sup.interrupt(job_id)
    else:
        await record(request, "job.cancel", job_id)  # before it acts, as POST /jobs/{id}/cancel
        await sup.cancel(job_id, wait=False)
