"""A `script --timing` file: when each chunk of a typescript was written.

The classic format (util-linux `script --timing=FILE`) has one line per chunk, `DELAY BYTES`:
seconds since the chunk before, and how many bytes of output it was. The advanced format
(`--logging-format advanced`) prefixes each line with a type, `O` for output; its other types
(input, signals, header) carry no output bytes and are skipped. The chunks follow the
typescript's header line (`Script started on ...`), which no chunk counts.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

__all__ = ["Timing", "read_timing", "timing_path"]

HEADER_PREFIX = b"Script started on "


def timing_path(typescript: str) -> str:
    """Where `script --timing` beside `typescript` writes: `X.typescript` -> `X.timing`."""
    return os.path.splitext(typescript)[0] + ".timing"


@dataclass(frozen=True, slots=True)
class Timing:
    """Chunk ends (file offsets, increasing) and the wall-clock times they were written at."""

    ends: list[int]
    times: list[float]

    def time_at(self, offset: int) -> float | None:
        """When the byte just before `offset` had been written; None past what is timed."""
        i = bisect.bisect_left(self.ends, offset)
        return self.times[i] if i < len(self.ends) else None

    def cuts(self, start: int, end: int, window: float, limit: int) -> list[tuple[int, float]]:
        """Split `[start, end)` at chunk ends into batches of chunks written within `window`
        seconds of each other and at most `limit` bytes: (batch end, its time) each, timed
        bytes only (the rest of the span is not in the list)."""
        out: list[tuple[int, float]] = []
        i = bisect.bisect_right(self.ends, start)
        first_t: float | None = None
        begin = start
        while i < len(self.ends) and self.ends[i] <= end:
            e, t = self.ends[i], self.times[i]
            if first_t is None:
                first_t = t
            nxt = i + 1
            last = (
                nxt >= len(self.ends)
                or self.ends[nxt] > end
                or self.times[nxt] - first_t > window
                or self.ends[nxt] - begin > limit
            )
            if last or e - begin >= limit:
                out.append((e, t))
                begin, first_t = e, None
            i = nxt
        return out


def read_timing(path: str, typescript_head: bytes) -> Timing | None:
    """The timing of the typescript whose first bytes are `typescript_head`; None if the file
    is missing or unreadable. Times end at the timing file's modification time (when its last
    chunk was written): more precise than the header's date, which has whole seconds."""
    try:
        with open(path, "rb") as f:
            text = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except OSError:
        return None
    header = 0
    if typescript_head.startswith(HEADER_PREFIX):
        nl = typescript_head.find(b"\n")
        if nl < 0:
            return None  # the header is not complete yet: nothing to place the chunks after
        header = nl + 1
    delays: list[float] = []
    sizes: list[int] = []
    #: the delays of the advanced format's input and signal entries, carried to the next output
    carry = 0.0
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == [b"O"]:
            fields = fields[1:]
        elif fields[:1] in ([b"I"], [b"S"], [b"H"]):
            try:
                carry += float(fields[1])
            except (IndexError, ValueError):
                pass
            continue
        if len(fields) != 2:
            continue
        try:
            delay, size = float(fields[0]), int(fields[1])
        except ValueError:
            continue
        if delay < 0 or size < 0:
            continue
        delays.append(delay + carry)
        sizes.append(size)
        carry = 0.0
    if not sizes:
        return None
    total = sum(delays)
    ends, times = [], []
    pos, elapsed = header, 0.0
    for delay, size in zip(delays, sizes, strict=True):
        pos += size
        elapsed += delay
        ends.append(pos)
        times.append(mtime - (total - elapsed))
    return Timing(ends, times)
