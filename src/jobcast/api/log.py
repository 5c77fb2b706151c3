"""GET /jobs/{id}/log: raw output bytes, by byte range or offset, and `follow=1` like `tail -f`."""

from __future__ import annotations

import contextlib
import re
from typing import cast

from aiohttp import web

from ..errors import BadRequest, JobNotFound, RangeNotSatisfiable
from ..store import StreamName
from .follow import transport_writer
from .http import query_int
from .state import STATE, Follower, Writer

__all__ = ["routes"]

routes = web.RouteTableDef()

CHUNK = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _range(header: str, size: int) -> tuple[int, int]:
    """`Range: bytes=a-b | a- | -n` -> [start, end) within `size`."""
    m = _RANGE.match(header.strip())
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
        raise RangeNotSatisfiable(
            f"the range starts past the end of the output ({size} bytes so far)"
        )
    return start, end


@routes.get("/jobs/{ref}/log")
async def job_log(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    store = state.store
    job = await store.get_job(request.match_info["ref"])
    stream = request.query.get("stream", "all")
    if stream not in ("stdout", "stderr", "all"):
        raise BadRequest(f"stream must be stdout, stderr or all, not {stream!r}")
    name = cast(StreamName, stream)
    follow = request.query.get("follow") in ("1", "true", "yes")
    size = await store.output_size(job.id, name)
    start, end = query_int(request, "offset", 0) or 0, None
    status = 200
    headers = {"Content-Type": "application/octet-stream", "X-Content-Type-Options": "nosniff"}
    if "Range" in request.headers and not follow:
        start, end = _range(request.headers["Range"], size)
        status = 206
        total = str(size) if job.status.is_final else "*"
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    elif not follow:
        end = size
    if end is not None:
        headers["Content-Length"] = str(max(0, end - start))
    resp = web.StreamResponse(status=status, headers=headers)
    if end is None and request.version >= (1, 1):
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    # Bytes go straight to the connection: aiohttp's writer would copy each chunk once more.
    write = transport_writer(request, chunk=resp.chunked)
    follower = Follower("log", job.id, request.transport)
    state.stats.add(follower)
    try:
        with contextlib.suppress(ConnectionError, JobNotFound):
            await _copy(request, write, follower, job.id, name, start, end)
    finally:
        state.stats.remove(follower)
    with contextlib.suppress(ConnectionError):
        await resp.write_eof()
    return resp


async def _copy(
    request: web.Request,
    write: Writer,
    follower: Follower,
    job_id: str,
    stream: StreamName,
    offset: int,
    end: int | None,
) -> None:
    """Bytes from `offset` to `end`; with no `end`, on as they come until the job completes."""
    state = request.app[STATE]
    store = state.store
    while end is None or offset < end:
        want = CHUNK if end is None else min(CHUNK, end - offset)
        data = await store.read_output(job_id, stream, offset, want)
        if data:
            await state.guarded(follower, write(data))
            offset += len(data)
            state.stats.bytes_sent += len(data)
            continue
        if end is not None or state.closing or store.closed:
            return
        job = await store.get_job(job_id)
        if job.status.is_final:
            if offset >= await store.output_size(job_id, stream):
                return
            continue
        await store.wait(job_id, job.last_seq)
