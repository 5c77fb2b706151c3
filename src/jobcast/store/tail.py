"""A job's in-memory tail: its newest events, bounded by bytes with what is cached on them."""

from __future__ import annotations

from ..models import Event
from .base import BATCH_BYTES

__all__ = ["EVENT_COST", "TAIL_BYTES", "Tail", "from_tail", "take"]

#: the default bound of each unfinished job's in-memory tail, cached encodings included
TAIL_BYTES = 8 * 1024 * 1024
#: what an event costs in memory beside its bytes (the object, its data and cache dicts), and
#: each encoding cached on it beside its own bytes: measured with tracemalloc, rounded up
EVENT_COST = 448
_ENTRY_COST = 96


class Tail:
    """The newest events of one job, contiguous by seq, and its running counters.

    Bounded by `limit` bytes, counting each event's bytes, its cost as an object and every
    encoding cached on it (the tail is the `Meter` its events charge): past the limit the older
    half goes. The events are cut into batches of up to `BATCH_BYTES` as they come (`opens` and
    `closes` mark them) and `read` stops at their edges, so clients catching up from anywhere
    read the same batches after their first and share their joins: one per batch and encoding,
    not one per cursor.

    `last_seq` and `sizes` count what was appended; `shown_seq` and `shown_sizes` what has
    committed, the part readers are given.
    """

    __slots__ = (
        "batch_bytes",
        "events",
        "first_seq",
        "last_seq",
        "limit",
        "nbytes",
        "pos",
        "shown_seq",
        "shown_sizes",
        "shown_status",
        "sizes",
    )

    def __init__(self, last_seq: int, sizes: dict[str, int], limit: int) -> None:
        self.events: list[Event] = []
        self.first_seq = last_seq + 1
        self.last_seq = last_seq
        self.limit = limit
        self.nbytes = 0
        self.batch_bytes = 0
        self.sizes = sizes
        self.pos = sizes["stdout"] + sizes["stderr"]
        self.shown_seq = last_seq
        self.shown_sizes = dict(sizes)
        #: the status its readers were last shown (None: none since this tail was made)
        self.shown_status: str | None = None

    def add(self, ev: Event) -> None:
        if not self.events or self.batch_bytes + ev.size > BATCH_BYTES:
            if self.events:
                self.events[-1].closes = True
            ev.opens = True
            self.batch_bytes = 0
        self.batch_bytes += ev.size
        ev.meter = self
        self.events.append(ev)
        self.last_seq = ev.seq
        self.nbytes += ev.size + EVENT_COST
        if self.nbytes > self.limit:
            self._trim()

    def charge(self, ev: Event, nbytes: int) -> bool:
        nbytes += _ENTRY_COST
        ev.cached += nbytes
        self.nbytes += nbytes
        if self.nbytes > self.limit:
            self._trim()
        return ev.meter is self  # False if that trimmed `ev` itself

    def _trim(self) -> None:
        # The older half at once: trimming amortises to O(1) per event.
        while self.nbytes > self.limit and len(self.events) > 1:
            cut = len(self.events) // 2
            for e in self.events[:cut]:
                self.nbytes -= e.size + EVENT_COST + e.cached
                e.forget()
            del self.events[:cut]
        self.first_seq = self.events[0].seq

    def release(self) -> None:
        """The job has finished: keep only its last event, for the followers that wait for it."""
        if not self.events:
            return
        for e in self.events[:-1]:
            e.forget()
        del self.events[:-1]
        last = self.events[-1]
        self.first_seq = last.seq
        self.nbytes = last.size + EVENT_COST + last.cached


def take(
    events: list[Event], start: int, max_bytes: int, end: int, *, aligned: bool = False
) -> list[Event]:
    """From `events[start:end]`: at least one, then as many as fit in `max_bytes` (and, if
    `aligned`, up to the end of the tail's batch)."""
    out: list[Event] = []
    total = 0
    for i in range(start, min(end, len(events))):
        ev = events[i]
        if out and (total + ev.size > max_bytes or (aligned and ev.opens)):
            break
        out.append(ev)
        total += ev.size
    return out


def from_tail(tail: Tail, stream: str, offset: int, length: int) -> bytes | None:
    """`stream`'s bytes in [offset, offset + length) from the tail's newest shown events, or None
    if they are not all there (looking back a few events only: this is for the end of the log)."""
    end = offset + length
    picked: list[bytes] = []
    last = min(tail.shown_seq - tail.first_seq, len(tail.events) - 1)
    for i in range(last, max(-1, last - 64), -1):
        ev = tail.events[i]
        if ev.type.value != stream:
            continue
        if ev.raw is None:
            return None
        start = ev.data["offset"]
        if start >= end:
            continue
        picked.append(ev.raw)
        if start <= offset:
            data = picked[0] if len(picked) == 1 else b"".join(reversed(picked))
            return data[offset - start : end - start]
    return None
