"""The line view: a job's output as complete, numbered lines `{line, line_no, stream}`.

`GET /jobs/{id}/lines?after_line=&stream=&limit=` answers a page of them in JSON; the job's SSE
stream and WebSocket with `?view=lines` follow them live. Derived from the event log as it is read,
never stored apart: lines are the `lines` module's (one number sequence per job across both
streams, so the numbers are those of `extraction` events). `stream=stdout|stderr` leaves the other
stream's lines out, their numbers too. The live views also carry the job's `extraction` events,
each after its line, and end with `complete`; a resume (`after_line`, or SSE's `Last-Event-ID`,
which is the last line's number) skips the lines and extractions up to that line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..errors import BadRequest
from ..lines import Batch, Splitter
from ..models import OUTPUT_EVENTS, Event, EventType
from ..protocol import event_dict, sse_comment, ws_frame
from .auth import visible_job
from .follow import TransportWriter
from .http import json_response, query_int
from .state import STATE, Follower, State

__all__ = ["LineQuery", "follow_lines", "line_query", "routes", "wants_lines"]

routes = web.RouteTableDef()

#: lines one `GET /jobs/{id}/lines` answers at most (and by default)
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LineQuery:
    after_line: int = 0
    stream: str = "all"


def wants_lines(request: web.Request) -> bool:
    """`?view=lines`; the default `events` is every event as it is."""
    view = request.query.get("view", "events")
    if view not in ("events", "lines"):
        raise BadRequest(f"query parameter `view` must be `events` or `lines`, not {view[:40]!r}")
    return view == "lines"


def line_query(request: web.Request, after: int | None = None) -> LineQuery:
    """`after_line` and `stream`; `after`, if given, wins (SSE's `Last-Event-ID`)."""
    if after is None:
        after = query_int(request, "after_line", 0) or 0
    stream = request.query.get("stream", "all")
    if stream not in ("all", "stdout", "stderr"):
        raise BadRequest(
            f"query parameter `stream` must be `stdout`, `stderr` or `all`, not {stream[:40]!r}"
        )
    return LineQuery(after, stream)


class LineView:
    """Events in log order -> items: lines past `after_line` (of the stream asked for), and with
    `events`, the job's extractions past it and its `complete`."""

    def __init__(self, query: LineQuery, *, events: bool) -> None:
        self._query = query
        self._events = events
        self._splitter = Splitter()
        self.done = False

    @property
    def last_line(self) -> int:
        return self._splitter.last

    def feed(self, events: list[Event]) -> list[Item | Event]:
        out: list[Item | Event] = []
        for ev in events:
            if ev.type in OUTPUT_EVENTS:
                if ev.raw:
                    self._add(self._splitter.feed(ev.type.value, ev.raw), out)
            elif ev.type is EventType.EXTRACTION:
                if ev.data.get("line_no", 0) > self._splitter.last:
                    # The matcher ended the last lines: the output is over.
                    self._flush(out)
                if self._events and ev.data.get("line_no", 0) > self._query.after_line:
                    if self._query.stream in ("all", ev.data.get("stream")):
                        out.append(ev)
            elif ev.type is EventType.COMPLETE:
                self._flush(out)
                self.done = True
                if self._events:
                    out.append(ev)
        return out

    def _flush(self, out: list[Item | Event]) -> None:
        for batch in self._splitter.flush():
            self._add(batch, out)

    def _add(self, batch: Batch, out: list[Item | Event]) -> None:
        q = self._query
        if not batch.count or batch.first + batch.count - 1 <= q.after_line:
            return
        if q.stream not in ("all", batch.stream):
            return
        for i, text in enumerate(batch.lines()):
            no = batch.first + i
            if no <= q.after_line:
                continue
            item: Item = {"line": text, "line_no": no, "stream": batch.stream}
            if no in batch.truncated:
                item["truncated"] = True
            out.append(item)


@routes.get("/jobs/{ref}/lines")
async def job_lines(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    query = line_query(request)
    limit = min(query_int(request, "limit", DEFAULT_LIMIT, minimum=1) or DEFAULT_LIMIT, MAX_LIMIT)
    view = LineView(query, events=False)
    lines: list[Item] = []
    after = 0
    while len(lines) < limit and not view.done:
        events = await state.store.read(job.id, after)
        if not events:
            break
        after = events[-1].seq
        lines += [i for i in view.feed(events) if isinstance(i, dict)]
    more = len(lines) > limit
    lines = lines[:limit]
    return json_response(
        {
            "lines": lines,
            "last_line": lines[-1]["line_no"] if lines else query.after_line,
            "complete": view.done and not more,
        }
    )


def sse_item(item: Item | Event) -> bytes:
    if isinstance(item, dict):
        return b"id: %d\nevent: line\ndata: %s\n\n" % (item["line_no"], orjson.dumps(item))
    # No `id:`: the stream's resume point stays the last line's number.
    return b"event: %s\ndata: %s\n\n" % (item.type.value.encode(), orjson.dumps(event_dict(item)))


def ws_item(item: Item | Event) -> bytes:
    if isinstance(item, dict):
        return ws_frame(orjson.dumps({"type": "line", **item}))
    return ws_frame(orjson.dumps(event_dict(item)))


async def follow_lines(
    state: State,
    follower: Follower,
    job_id: str,
    query: LineQuery,
    encode: Callable[[Item | Event], bytes],
    write: TransportWriter,
    heartbeat: bytes | None = None,
) -> bool:
    """Write the job's lines (and extractions) past `query.after_line` until its `complete`;
    True if that was reached, False if the server is closing or the client left.

    Its own simple loop, not `follow.follow_job`'s shared frames: each client's lines are cut
    from its own reading of the log. Every client reads the log from its start (line numbers
    are counted there), the tail from memory.
    """
    store = state.store
    view = LineView(query, events=True)
    after = 0
    last_write = time.monotonic()
    while True:
        events = await store.read(job_id, after)
        if events:
            after = events[-1].seq
            items = view.feed(events)
            del events
            if items:
                await state.guarded(follower, write(b"".join(encode(i) for i in items)))
                last_write = time.monotonic()
            if view.done:
                return True
            continue
        if state.closing or store.closed or write.transport.is_closing():
            return False
        if not store.is_live(job_id):
            job = await store.get_job(job_id)
            if job.status.is_final and after >= job.last_seq:
                return True
        if (
            heartbeat is not None
            and time.monotonic() - last_write >= state.settings.heartbeat_seconds
        ):
            await state.guarded(follower, write(heartbeat))
            last_write = time.monotonic()
        await store.wait(job_id, after)


HEARTBEAT = sse_comment("ping")
