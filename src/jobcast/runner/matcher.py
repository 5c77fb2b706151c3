"""A job's matcher: a subscriber of its event log that appends `extraction` and `progress` events.

The flow stays one way (runner -> event log -> subscribers): the matcher reads the job's output
events after they are stored, as any follower does, in a task of its own, and appends what it
finds. Output reaches followers first and never waits for it; a matcher that falls behind catches
up from the log. It holds one batch of events (`BATCH_BYTES`) and one unended line per stream
(at most `lines.MAX_LINE`), whatever the output.

When the process has ended, `finish` lets it read to the end of the output, end the last lines and
give the progress it held back, all before the job's `complete` event; a matcher still behind after
`FINISH_SECONDS` is stopped there, and an `error` event (`extract_behind`) says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence

from ..extract import Extractor, Patterns
from ..lines import Batch, Splitter, strip_ansi
from ..models import OUTPUT_EVENTS, Event, EventType
from ..progress import Progress, Throttle, detect, scan_osc
from ..store.base import Store

__all__ = ["FINISH_SECONDS", "MAX_EXTRACTIONS", "Matcher"]

logger = logging.getLogger("jobcast.runner")

#: how long the job's end waits for its matcher to catch up
FINISH_SECONDS = 10.0
#: `extraction` events one job may have; past it a notice says matching stopped
MAX_EXTRACTIONS = 10_000
#: lines of a batch this long (bytes) are matched in a worker thread, shorter ones on the loop
THREAD_BYTES = 256 * 1024
#: the end of a batch's output looked at for progress: the newest form shown is what counts,
#: and progress lines are short
PROGRESS_SCAN = 2048
#: segments (lines or `\r` rewrites), newest first, tried for progress in one batch
PROGRESS_SEGMENTS = 8


#: what every progress form has one of (progress.detect's own first test, on bytes)
_HINTS = re.compile(rb"%|/|\[|::progress")


def combine(global_: Sequence[Extractor], own: Sequence[Extractor]) -> list[Extractor]:
    """The server's extractors, then the job's; a job's own replaces one of the same name."""
    names = {x.name for x in own}
    return [*(x for x in global_ if x.name not in names), *own]


class Matcher:
    def __init__(
        self,
        store: Store,
        job_id: str,
        extractors: Sequence[Extractor],
        *,
        progress: bool = True,
        throttle: float = 0.25,
        on_match: Callable[[int], None] | None = None,
    ) -> None:
        self._store, self._job_id = store, job_id
        #: told how many extraction events each batch of lines gave (the server's metrics)
        self._on_match = on_match
        self._patterns = Patterns(list(extractors))
        self._progress = progress
        self._throttle = Throttle(throttle)
        self._splitter = Splitter()
        self._osc_carry: dict[str, bytes] = {}
        #: without extractors: the end of each stream's output, where progress is looked for
        self._ends: dict[str, bytes] = {}
        self._ending = asyncio.Event()
        #: wakes the matcher where it waits for more output (see `_idle`)
        self._wake: Callable[[], bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._extractions = 0
        #: the seq of the last event read
        self.after = 0
        self.finish_seconds = FINISH_SECONDS

    @property
    def wanted(self) -> bool:
        return bool(self._patterns) or self._progress

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"jobcast-match-{self._job_id}")

    async def finish(self) -> None:
        """The output has ended: match the rest, then return (within `finish_seconds`)."""
        task, timeout = self._task, self.finish_seconds
        if task is None:
            return
        self._ending.set()
        if self._wake is not None:
            self._wake()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            message = (
                f"the extractors fell {timeout:g}s behind the output and were stopped at "
                f"line {self._splitter.last}; later lines were not matched"
            )
            await self._append(EventType.ERROR, {"message": message, "code": "extract_behind"})
        elif not task.cancelled() and task.exception() is not None:
            logger.error("job %s: the matcher failed: %r", self._job_id, task.exception())

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        store = self._store
        while True:
            events = await store.read(self._job_id, self.after)
            if events:
                self.after = events[-1].seq
                await self._consume(events)
                continue
            if self._ending.is_set():
                break
            if store.closed:
                return  # nothing can be appended any more
            await self._idle()
        for batch in self._splitter.flush():
            await self._lines(batch)
        held = self._throttle.take(time.monotonic())
        if held is not None:
            await self._append(EventType.PROGRESS, held)

    async def _idle(self) -> None:
        """Until there is more to read, the process ended, or held-back progress is due.

        One future, woken by the store's listener call (a new event, or the tick), by `finish`, or
        by a timer when progress is due: no task per wait, as the matcher waits once per batch.
        """
        due = self._throttle.due(time.monotonic())
        if due == 0:
            await self._give_held()
            return
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> bool:
            if not woken.done():
                woken.set_result(None)
            return False  # once: the next wait registers again

        if not self._store.listen(self._job_id, self.after, wake):
            if not self._store.is_live(self._job_id):
                # No tail to listen at (the store closing): look again in a while, not at once.
                await asyncio.sleep(0.1)
            return  # else there is an event past `after` already: read it
        self._wake = wake
        timer = loop.call_later(due, wake) if due is not None else None
        try:
            await woken
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()
        if self._throttle.due(time.monotonic()) == 0:
            await self._give_held()

    async def _give_held(self) -> None:
        held = self._throttle.take(time.monotonic())
        if held is not None:
            await self._append(EventType.PROGRESS, held)

    async def _consume(self, events: list[Event]) -> None:
        for ev in events:
            if ev.type not in OUTPUT_EVENTS or not ev.raw:
                continue
            stream = ev.type.value
            if not self._patterns:
                # Progress alone needs no lines, only the end of the output.
                if self._progress:
                    before = self._ends.get(stream, b"")
                    self._ends[stream] = _end(before, ev.raw)
                    await self._detect(stream, ev.raw, before)
                continue
            before = self._splitter.pending(stream)
            batch = self._splitter.feed(stream, ev.raw)
            if self._progress:
                await self._detect(stream, ev.raw, before)
            await self._lines(batch)

    async def _lines(self, batch: Batch) -> None:
        if not self._patterns or not batch.count or self._extractions >= MAX_EXTRACTIONS:
            return
        if len(batch.data) >= THREAD_BYTES:
            # RE2 lets go of the GIL while it scans: a big batch is scanned beside the event
            # loop (on another core where there is one), not in its way.
            matches = await asyncio.to_thread(lambda: list(self._patterns.find(batch)))
        else:
            matches = list(self._patterns.find(batch))
        appended = 0
        try:
            for match in matches:
                self._extractions += 1
                if self._extractions > MAX_EXTRACTIONS:
                    message = (
                        f"the job has {MAX_EXTRACTIONS} extraction events, the most one job may "
                        f"have; matching stopped at line {match.line_no}"
                    )
                    error = {"message": message, "code": "extract_limit"}
                    await self._append(EventType.ERROR, error)
                    return
                await self._append(EventType.EXTRACTION, match.data())
                appended += 1
        finally:
            if appended and self._on_match is not None:
                self._on_match(appended)

    async def _detect(self, stream: str, data: bytes, before: bytes) -> None:
        found: Progress | None = None
        # A one-byte test first (memchr): most output has no escape at all.
        if (b"\x1b" in data and b"\x1b]9;4;" in data) or self._osc_carry.get(stream):
            osc, self._osc_carry[stream] = scan_osc(self._osc_carry.get(stream, b"") + data)
            if osc:
                found = osc[-1]
        if found is None:
            found = _newest(_end(before, data))
        if found is not None:
            value = self._throttle.offer(found, time.monotonic())
            if value is not None:
                await self._append(EventType.PROGRESS, value)

    async def _append(self, type: EventType, data: Progress) -> None:
        try:
            await self._store.append(self._job_id, type, data)
        except Exception as e:
            # The output is stored already; only this finding is lost.
            logger.error("job %s: could not record an %s event: %r", self._job_id, type, e)


def _end(before: bytes, data: bytes) -> bytes:
    """The last PROGRESS_SCAN bytes of `before` then `data`, without joining them when `data` is
    that long itself."""
    if len(data) >= PROGRESS_SCAN:
        return data[-PROGRESS_SCAN:]
    return (before + data)[-PROGRESS_SCAN:]


def _newest(data: bytes) -> Progress | None:
    """The progress shown by the newest of the last segments of `data` that shows one."""
    if not _HINTS.search(data):
        return None  # one C-level pass for most output, which shows no progress at all
    text = strip_ansi(data.decode(errors="replace"))
    segments = text.replace("\r", "\n").split("\n")
    tried = 0
    for segment in reversed(segments):
        if not segment.strip():
            continue
        value = detect(segment)
        if value is not None:
            return value
        tried += 1
        if tried >= PROGRESS_SEGMENTS:
            break
    return None
