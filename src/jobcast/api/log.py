"""GET /jobs/{id}/log: raw output bytes, by byte range or offset, and `follow=1` like `tail -f`."""

from __future__ import annotations

import contextlib
import re
from typing import cast

from aiohttp import web

from ..errors import BadRequest, JobNotFound, RangeNotSatisfiable
from ..models import OUTPUT_EVENTS, Event, EventType, Job
from ..store import StreamName
from .auth import visible_job
from .follow import TransportWriter, follow_job
from .http import query_int
from .state import STATE, Follower

__all__ = ["routes"]

routes = web.RouteTableDef()

CHUNK = 1024 * 1024
# ASCII digits only (`\d` would take "٣"); the values are only compared, so no upper bound.
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


class RangePastEnd(RangeNotSatisfiable):
    """A 416 that says how big the output is, as RFC 9110 asks: `Content-Range: bytes */SIZE`."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.headers = {"Content-Range": f"bytes */{size}"}


def _range(header: str, size: int) -> tuple[int, int]:
    """`Range: bytes=a-b | a- | -n` -> [start, end) within `size`."""
    m = _RANGE.fullmatch(header.strip())
    if m is None or m.group(1) == m.group(2) == "":
        raise BadRequest(
            f"Range {header!r} is not understood; use bytes=START-END, bytes=START- or bytes=-N"
        )
    first, last = m.group(1), m.group(2)
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise RangePastEnd(
            f"the range starts past the end of the output ({size} bytes so far)", size
        )
    return start, end


@routes.get("/jobs/{ref}/log")
async def job_log(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    store = state.store
    job = await visible_job(request)
    job_id, final = job.id, job.status.is_final
    del job  # not held for a follower's whole life: a Job model is ~3 KiB
    stream = request.query.get("stream", "all")
    if stream not in ("stdout", "stderr", "all"):
        raise BadRequest(f"stream must be stdout, stderr or all, not {stream!r}")
    name = cast(StreamName, stream)
    follow = request.query.get("follow") in ("1", "true", "yes")
    size = await store.output_size(job_id, name)
    start, end = query_int(request, "offset", 0) or 0, None
    status = 200
    headers = {"Content-Type": "application/octet-stream", "X-Content-Type-Options": "nosniff"}
    if "Range" in request.headers and follow:
        # A follower resuming where its connection was cut: `bytes=N-`, the same as `offset=N`.
        m = _RANGE.fullmatch(request.headers["Range"].strip())
        if m is None or not m.group(1) or m.group(2):
            raise BadRequest(
                "with follow=1, Range must be bytes=START- (from START on, as it comes)"
            )
        start = int(m.group(1))
    elif "Range" in request.headers:
        start, end = _range(request.headers["Range"], size)
        status = 206
        total = str(size) if final else "*"
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    elif not follow or final:
        if start > size:
            # At the very end is an empty answer (nothing new yet); past it, a range error.
            raise RangePastEnd(f"offset {start} is past the end of the output ({size} bytes)", size)
        if not follow:
            end = size
    if end is not None:
        headers["Content-Length"] = str(max(0, end - start))
    if request.method == "HEAD":
        # The headers a GET would have, and no body: never a stream held open.
        return web.Response(status=status, headers=headers)
    resp = web.StreamResponse(status=status, headers=headers)
    if end is None and request.version >= (1, 1):
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    # Bytes go straight to the connection: aiohttp's writer would copy each chunk once more.
    write = TransportWriter(request, chunk=resp.chunked)
    follower = Follower("log", job_id, request.transport)
    state.stats.add(follower)
    try:
        with contextlib.suppress(ConnectionError, JobNotFound):
            if end is not None:
                await _copy(request, write, follower, job_id, name, start, end)
            else:
                await _follow(request, write, follower, job_id, name, start)
    finally:
        state.stats.remove(follower)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp


def _size(job: Job, stream: StreamName) -> int:
    if stream == "all":
        return job.stdout_bytes + job.stderr_bytes
    return job.stdout_bytes if stream == "stdout" else job.stderr_bytes


async def _copy(
    request: web.Request,
    write: TransportWriter,
    follower: Follower,
    job_id: str,
    stream: StreamName,
    offset: int,
    end: int,
) -> None:
    """Bytes from `offset` to `end`, read from the output files."""
    state = request.app[STATE]
    while offset < end:
        data = await state.store.read_output(job_id, stream, offset, min(CHUNK, end - offset))
        if not data:
            return
        await state.guarded(follower, write(data))
        offset += len(data)
        follower.bytes_sent += len(data)


async def _follow(
    request: web.Request,
    write: TransportWriter,
    follower: Follower,
    job_id: str,
    stream: StreamName,
    offset: int,
) -> None:
    """Bytes from `offset` on, as they come, until the job completes.

    What is already written is copied from the files; from there on this is a follower like any
    other, a cursor over the job's events whose frames are their raw bytes, served from the
    in-memory tail and joined once for every `/log` client at the same position.
    """
    state = request.app[STATE]
    store = state.store
    while True:
        # One snapshot: the byte count and the seq of the event that brought it, together.
        job = await store.get_job(job_id)
        size, last_seq, final = _size(job, stream), job.last_seq, job.status.is_final
        del job  # not held while following (see job_log)
        if offset < size:
            await _copy(request, write, follower, job_id, stream, offset, size)
            offset = size
            continue  # more may have come meanwhile; copy that too while far behind
        if offset == size:
            break
        if final or state.closing or store.closed:
            return  # the offset asked for lies past the end of the output
        await store.wait(job_id, last_seq)
    if not final:
        types = OUTPUT_EVENTS if stream == "all" else {EventType(stream)}

        def frame(ev: Event) -> bytes:
            return (ev.raw or b"") if ev.type in types else b""

        await follow_job(state, follower, job_id, last_seq, frame, f"log:{stream}", write)
