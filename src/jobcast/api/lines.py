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

import bisect
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..errors import BadRequest
from ..lines import Batch, Splitter, SplitterState
from ..models import OUTPUT_EVENTS, Event, EventType
from ..protocol import event_dict, sse_comment, ws_frame
from .auth import visible_job
from .follow import TransportWriter
from .http import json_response, query_int
from .state import STATE, Follower, State

__all__ = ["LineQuery", "LineView", "follow_lines", "line_query", "routes", "wants_lines"]

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


@dataclass(frozen=True, slots=True)
class Mark:
    """Where the line count stands once a job's events up to `seq` are read."""

    seq: int
    state: SplitterState

    @property
    def last_line(self) -> int:
        return self.state[0]


class Marks:
    """Marks in the logs of the jobs read lately, so a view resumed at line N starts reading near
    it, not at the log's start. Bounded: `jobs` jobs, `per_job` marks each (thinned out, the
    spacing doubled, when full); no mark where an unended line holds more than `MARK_PENDING`."""

    def __init__(self, jobs: int = 256, per_job: int = 64) -> None:
        self._jobs = jobs
        self._per_job = per_job
        self._marks: OrderedDict[str, list[Mark]] = OrderedDict()
        self._spacing: dict[str, int] = {}

    def spacing(self, job_id: str) -> int:
        """Output bytes between two marks of the job."""
        return self._spacing.get(job_id, MARK_BYTES)

    def nearest(self, job_id: str, after_line: int) -> Mark | None:
        """The furthest mark at or before line `after_line`."""
        marks = self._marks.get(job_id)
        if not marks:
            return None
        self._marks.move_to_end(job_id)
        i = bisect.bisect_right([m.last_line for m in marks], after_line)
        return marks[i - 1] if i else None

    def add(self, job_id: str, mark: Mark) -> None:
        marks = self._marks.setdefault(job_id, [])
        self._marks.move_to_end(job_id)
        if marks and mark.seq <= marks[-1].seq:
            return  # another reader marked this far already
        marks.append(mark)
        if len(marks) > self._per_job:
            self._marks[job_id] = marks[1::2]
            self._spacing[job_id] = self.spacing(job_id) * 2
        while len(self._marks) > self._jobs:
            old, _ = self._marks.popitem(last=False)
            self._spacing.pop(old, None)


#: output between two marks of a job, at first
MARK_BYTES = 4 << 20
#: no mark is kept where the unended lines hold more than this
MARK_PENDING = 4096
MARKS = Marks()


class LineView:
    """Events in log order -> items: lines past `after_line` (of the stream asked for), and with
    `events`, the job's extractions past it and its `complete`.

    `start` is where reading begins (`seq`: the first event to read is the one after it): the
    nearest mark before `after_line` of the job, else the log's start. Marks are left on the way.
    """

    def __init__(
        self,
        job_id: str,
        query: LineQuery,
        *,
        events: bool,
        also: frozenset[EventType] = frozenset(),
    ) -> None:
        self._job_id = job_id
        self._query = query
        self._events = events
        #: more event types passed on as they are, in their place (a drop-in profile's `state`)
        self._also = also
        mark = MARKS.nearest(job_id, query.after_line) if query.after_line else None
        self._splitter = Splitter.resume(mark.state) if mark is not None else Splitter()
        self.start = mark.seq if mark is not None else 0
        self._since_mark = 0
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
                    self._since_mark += len(ev.raw)
                    if self._since_mark >= MARKS.spacing(self._job_id):
                        self._mark(ev.seq)
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
            elif ev.type in self._also:
                out.append(ev)
        return out

    def _mark(self, seq: int) -> None:
        if self._splitter.pending_bytes() <= MARK_PENDING:
            MARKS.add(self._job_id, Mark(seq, self._splitter.state()))
            self._since_mark = 0

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
    view = LineView(job.id, query, events=False)
    lines: list[Item] = []
    after = view.start
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
    from its own reading of the log, from its start (line numbers are counted there) or from
    the nearest mark before the line it resumes after.
    """
    store = state.store
    view = LineView(job_id, query, events=True)
    after = view.start
    last_write = time.monotonic()
    while True:
        events = await store.read(job_id, after)
        if events:
            after = events[-1].seq
            items = view.feed(events)
            del events
            if items:
                data = b"".join(encode(i) for i in items)
                await state.guarded(follower, write(data))
                last_write = time.monotonic()
                follower.events_sent += len(items)
                follower.bytes_sent += len(data)
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
