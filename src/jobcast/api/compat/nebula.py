"""The `nebula` profile (seed 004, "Runs Streaming Feature"): a run is a job.

`runs`: python-socketio's server (engine.io's polling and WebSocket transports, as the
document's `io(url, {path: '/runs', auth: {token}, query: {runId}})` connects), each of the run's
events a `run-event` message `{type, data}`: `stdout`/`stderr` (the text), `status` (`queued`,
`running`, then `succeeded`, `failed` or `cancelled`: timed out and lost are failures). The same
path without engine.io's `EIO` query is a plain WebSocket (`wscat -c "ws://HOST/runs?runId=…&
token=…"`), each message one `{type, data}` JSON text; it closes (1000) once the run has ended.
A client sees the run from its start. The token comes as `auth.token`, `Authorization: Bearer`,
`?token=` or `?access_token=` and needs `read` (nebula's guard, here over jobcast's tokens); a
connection without a good one, or for a run it may not see, is refused (socket.io's
`connect_error`, or a 401/404 before the upgrade). `POST runs/{id}/cancel` (`control`) cancels:
`{runId, status}`. Errors are NestJS's: `{statusCode, message, error}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import orjson
import socketio  # type: ignore[import-untyped]
from aiohttp import WSMsgType, web

from ...config import Scope, Settings
from ...errors import JobcastError, JobNotFound, MissingScope, Unauthorized
from ...models import Event, EventType, Job, JobStatus
from ...protocol import ws_frame
from ..auth import LOCAL, TOKENS, Identity, Rule, Tokens
from ..follow import TransportWriter, follow_job
from ..http import json_response
from ..jobs import cancel_job
from ..state import STATE, Follower, State
from ..websocket import open_socket, release
from . import Profile, Route
from .sse import cached

__all__ = ["PROFILE"]

KIND = "nebula"
log = logging.getLogger("jobcast.api.compat.nebula")
#: jobcast's statuses in the run lifecycle's words
_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.TIMED_OUT: "failed",
    JobStatus.LOST: "failed",
}

#: what engine.io's polling transport posts. Safe beside the guard's reasons: a page elsewhere
#: still sends its Origin (refused), and a post is only heard for a session a token opened.
_POLLING = frozenset({"text/plain", "application/octet-stream"})

SIO = web.AppKey("jobcast_nebula_sio", socketio.AsyncServer)
#: the connections of the requests engine.io serves now (its WebSockets among them)
UPGRADED = web.AppKey("jobcast_nebula_upgraded", set[asyncio.BaseTransport])


def run_event(ev: Event) -> dict[str, str] | None:
    """The event as the document's `run-event` `{type, data}`; None if it has none for it."""
    if ev.type in (EventType.STDOUT, EventType.STDERR):
        return {"type": ev.type.value, "data": (ev.raw or b"").decode("utf-8", "replace")}
    if ev.type is EventType.STATUS:
        return {"type": "status", "data": _STATUS[JobStatus(ev.data["status"])]}
    return None


def _plain_frame(ev: Event) -> bytes:
    def encode(ev: Event) -> bytes:
        body = run_event(ev)
        return b"" if body is None else ws_frame(orjson.dumps(body))

    return cached(ev, KIND + "ws", encode)


def _sio_packet(ev: Event) -> bytes:
    """The socket.io packet (`2["run-event",{...}]`), built once for every client of the run."""

    def encode(ev: Event) -> bytes:
        body = run_event(ev)
        if body is None:
            return b""
        packet = socketio.packet.Packet(socketio.packet.EVENT, data=["run-event", body])
        return str(packet.encode()).encode()

    return cached(ev, KIND + "sio", encode)


# -- who asks, for which run -------------------------------------------------------------------


def _identify(state_tokens: Tokens, token: str | None) -> Identity:
    if not state_tokens.enabled:
        return LOCAL
    identity = state_tokens.identify(token) if token else None
    if identity is None:
        raise Unauthorized(
            "a token is needed: `auth: {token}`, `Authorization: Bearer TOKEN` or `?token=`"
            if not token
            else "the token is not valid",
            invalid=bool(token),
        )
    if not identity.allows(Scope.READ):
        raise MissingScope(
            f"token {identity.name!r} lacks the `read` scope, which a run's stream needs"
        )
    return identity


def _token(headers: dict[str, str], query: dict[str, str], auth: Any) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query.get("token") or query.get("access_token")


async def _run(state: State, identity: Identity, run_id: str | None) -> Job:
    if not run_id:
        raise JobNotFound("connect with `runId` in the query: the run to stream")
    try:
        job = await state.store.get_job(run_id)
    except JobNotFound:
        raise JobNotFound(f"run {run_id!r} not found") from None
    if not identity.sees(job.labels):
        raise JobNotFound(f"run {run_id!r} not found")
    return job


async def _events(state: State, job_id: str, send: Callable[[Event], Awaitable[None]]) -> None:
    """Hand each of the run's events to `send`, from its first to its `complete`."""
    store, after = state.store, 0
    while not (state.closing or store.closed):
        events = await store.read(job_id, after)
        for ev in events:
            await send(ev)
        if events:
            after = events[-1].seq
            if events[-1].type is EventType.COMPLETE:
                return
            continue
        if not store.is_live(job_id):
            job = await store.get_job(job_id)
            if job.status.is_final and after >= job.last_seq:
                return
        await store.wait(job_id, after)


# -- socket.io ---------------------------------------------------------------------------------


def _setup(app: web.Application, settings: Settings) -> None:
    # cors_allowed_origins=[]: jobcast's own Origin guard and CORS answer for this path too.
    sio = socketio.AsyncServer(
        async_mode="aiohttp", cors_allowed_origins=[], logger=False, engineio_logger=False
    )
    tasks: dict[str, asyncio.Task[None]] = {}

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        request: web.Request = environ["aiohttp.request"]
        state = request.app[STATE]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            identity = _identify(request.app[TOKENS], _token(headers, query, auth))
            job = await _run(state, identity, query.get("runId"))
        except JobcastError as e:
            raise socketio.exceptions.ConnectionRefusedError(e.message) from None
        tasks[sid] = asyncio.create_task(_follow(sio, state, sid, job.id), name="jobcast-nebula")

    async def disconnect(sid: str, *args: Any) -> None:
        task = tasks.pop(sid, None)
        if task is not None:
            task.cancel()

    async def shutdown(app: web.Application) -> None:
        for task in list(tasks.values()):
            task.cancel()
        # engine.io's WebSockets outlive its disconnect() here (its client was told nothing):
        # cut them, or the server would wait for each client to leave.
        open_now: set[asyncio.BaseTransport] = app[UPGRADED]
        for transport in list(open_now):
            transport.close()

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    app.on_shutdown.append(shutdown)
    app[SIO] = sio
    app[UPGRADED] = set()


async def _follow(sio: Any, state: State, sid: str, job_id: str) -> None:
    follower = Follower(KIND, job_id, None)
    state.stats.add(follower)
    try:
        # The connect answer goes out once the handler has returned, and python-socketio tells
        # nothing when: the events wait for the namespace to be connected.
        while not sio.manager.is_connected(sid, "/"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        eio_sid = sio.manager.eio_sid_from_sid(sid, "/")

        async def send(ev: Event) -> None:
            packet = _sio_packet(ev)
            if packet:
                await sio.eio.send(eio_sid, packet.decode())
                follower.events_sent += 1
                follower.bytes_sent += len(packet)

        await _events(state, job_id, send)
    except (ConnectionError, JobNotFound, KeyError):
        pass  # the client left (or the run was deleted): nothing more to send
    finally:
        state.stats.remove(follower)


async def _plain(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    query = dict(request.query)
    headers = {k.lower(): v for k, v in request.headers.items()}
    identity = _identify(request.app[TOKENS], _token(headers, query, None))
    job = await _run(state, identity, query.get("runId"))
    ws = await open_socket(request)
    follower = Follower(KIND, job.id, request.transport)
    state.stats.add(follower)

    async def drain() -> None:
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                return

    reader = asyncio.create_task(drain())
    follow = asyncio.create_task(
        follow_job(state, follower, job.id, 0, _plain_frame, KIND + "ws", TransportWriter(request))
    )
    try:
        await asyncio.wait({reader, follow}, return_when=asyncio.FIRST_COMPLETED)
        if follow.done() and not follow.cancelled() and follow.exception() is None:
            if follow.result() and not ws.closed:
                await ws.close(code=1000, message=b"the run has ended")
    finally:
        for task in (reader, follow):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, JobcastError):
                await task
        state.stats.remove(follower)
        release(ws)
    return ws


async def runs(request: web.Request) -> web.StreamResponse:
    if "EIO" in request.query:
        upgraded, transport = request.app[UPGRADED], request.transport
        if transport is not None:
            upgraded.add(transport)
        try:
            resp: web.StreamResponse = await request.app[SIO].handle_request(request)
        finally:
            upgraded.discard(transport)
        return resp
    return await _plain(request)


async def cancel(request: web.Request) -> web.Response:
    await cancel_job(request)
    job = await request.app[STATE].store.get_job(request.match_info["ref"])
    return json_response({"runId": job.id, "status": _STATUS[job.status]})


def _error(status: int, code: str, text: str) -> dict[str, Any]:
    return {"statusCode": status, "message": text, "error": HTTPStatus(status).phrase}


PROFILE = Profile(
    name="nebula",
    title="NebulaCode runs streaming",
    seed="004_699fe239ff1982ad.txt",
    routes=(
        # The token is checked by the handler (nebula's guard): it may come in socket.io's own
        # handshake, after the HTTP requests of the polling transport.
        Route("GET", "/runs", runs, Rule(None)),
        Route("POST", "/runs", runs, Rule(None), _POLLING),
        # socket.io-client asks for `path` with a slash at its end (engine.io's addTrailingSlash)
        Route("GET", "/runs/", runs, Rule(None)),
        Route("POST", "/runs/", runs, Rule(None), _POLLING),
        Route("POST", "/runs/{ref}/cancel", cancel, Rule(Scope.CONTROL)),
    ),
    error=_error,
    setup=_setup,
)
