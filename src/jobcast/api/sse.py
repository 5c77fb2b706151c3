"""Server-Sent Events: /jobs/{id}/events (one job, ends after `complete`) and /stream (all jobs)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from ..config import Scope
from ..errors import JobNotFound
from ..models import Event
from ..protocol import sse_comment, sse_frame
from .auth import IDENTITY, job_filter, visible_job
from .follow import TransportWriter, chunked, follow_firehose, follow_job
from .http import header_int, query_b64, query_int
from .lines import follow_lines, line_query, sse_item, wants_lines
from .state import STATE, Follower

__all__ = ["HEARTBEAT", "open_stream", "resume_point", "routes", "run_stream", "stream_job"]

routes = web.RouteTableDef()

HEARTBEAT = sse_comment("ping")


def resume_point(request: web.Request) -> int | None:
    """`Last-Event-ID` (sent by a reconnecting EventSource) wins over `after`; both read alike."""
    last = header_int(request, "Last-Event-ID")
    return last if last is not None else query_int(request, "after")


async def open_stream(
    request: web.Request, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **(headers or {}),
        }
    )
    if request.version >= (1, 1):
        # Explicit, so `resp.chunked` tells whether raw writes must be framed as chunks.
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    # Tell the client how soon to come back, and flush the headers so it knows it is connected.
    await resp.write(b"retry: 1000\n: connected\n\n")
    return resp


# No HEAD: its answer would be a stream without a body, held open until the job ends.
@routes.get("/jobs/{ref}/events", allow_head=False)
async def job_events(request: web.Request) -> web.StreamResponse:
    # Only the id is kept: a Job model held for the stream's life would cost ~3 KiB a client.
    job_id = (await visible_job(request)).id
    if wants_lines(request):
        return await _stream_lines(request, job_id)
    return await stream_job(request, job_id, resume_point(request) or 0)


async def _stream_lines(request: web.Request, job_id: str) -> web.StreamResponse:
    query = line_query(request, header_int(request, "Last-Event-ID"))
    resp = await open_stream(request)
    follower = Follower("sse", job_id, request.transport)
    write = TransportWriter(request, chunk=resp.chunked)
    state = request.app[STATE]
    await run_stream(
        request, follower, follow_lines(state, follower, job_id, query, sse_item, write, HEARTBEAT)
    )
    return resp


async def stream_job(
    request: web.Request, job_id: str, after: int = 0, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Answer `request` with the SSE stream of job `job_id` from `after` on, until its
    `complete` event: what `GET /jobs/{id}/events` sends, and `POST /chat` with `stream`."""
    state = request.app[STATE]
    b64 = query_b64(request)

    def frame(ev: Event) -> bytes:
        return sse_frame(ev, b64=b64)

    resp = await open_stream(request, headers)
    follower = Follower("sse", job_id, request.transport)
    envelope = chunked if resp.chunked else None
    tag = ("sse64" if b64 else "sse") + ("c" if envelope else "")
    beat = envelope(HEARTBEAT) if envelope else HEARTBEAT
    loop = follow_job(
        state, follower, job_id, after, frame, tag, TransportWriter(request), beat, envelope
    )
    await run_stream(request, follower, loop)
    return resp


@routes.get("/stream", allow_head=False)
async def firehose(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    after = resume_point(request)
    if after is None:
        after = state.store.last_gid()
    output = request.query.get("output") in ("1", "true", "yes")
    b64 = query_b64(request)

    def frame(ev: Event) -> bytes:
        return sse_frame(ev, b64=b64, firehose=True)

    resp = await open_stream(request)
    follower = Follower("stream", None, request.transport)
    await run_stream(
        request,
        follower,
        follow_firehose(
            state,
            follower,
            after,
            output,
            frame,
            TransportWriter(request),
            chunked(HEARTBEAT) if resp.chunked else HEARTBEAT,
            chunked if resp.chunked else None,
            job_filter(state, request[IDENTITY]),
            # the ledger says who did what to every job: for those who may read it (`/trace`)
            with_trace=request[IDENTITY].allows(Scope.ADMIN),
        ),
    )
    return resp


async def run_stream(request: web.Request, follower: Follower, loop: Any) -> None:
    """Run a streaming loop for `follower`, counted in the stats meanwhile."""
    stats = request.app[STATE].stats
    stats.add(follower)
    try:
        # A client that went away surfaces as a failed write, a job deleted meanwhile as
        # JobNotFound: either ends only this stream (its headers are long sent).
        with contextlib.suppress(ConnectionError, JobNotFound):
            await loop
    finally:
        stats.remove(follower)
