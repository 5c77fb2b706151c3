"""Complete lines out of output chunks: the one definition of a line that extractors and the line
view share, so a line's number is the same in an `extraction` event and in `GET /jobs/{id}/lines`.

A line is what ends with `\\n` in one stream (stdout or stderr), however the bytes were cut into
chunks; the end of the output ends the last one. Its text is its final form as a terminal shows it
after `\\r` rewrites (what follows the last `\\r`; a trailing `\\r`, as in a PTY's `\\r\\n`, is dropped),
decoded as UTF-8 with replacement characters, with ANSI escape sequences (colours, cursor moves,
OSC titles) removed. Lines are numbered from 1 in one sequence per job across both streams, in the
order they complete in the log (as seed 003's agents number theirs). A line longer than `MAX_LINE`
bytes keeps its first `MAX_LINE` bytes and is marked truncated; the rest is skipped, so neither a
matcher nor a line view ever holds more than that of one line.

Pure: bytes in, lines out; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_LINE", "Batch", "Splitter", "SplitterState", "strip_ansi"]

#: the most of one line kept (bytes, 1 MiB); the rest of a longer line is skipped, the line marked
#: truncated
MAX_LINE = 1024 * 1024

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), other two-byte escapes, and C1 CSI (U+009B,
# two bytes in UTF-8). Linear: no nested repetition.
_ANSI_PARTS = (
    rb"\x1b\[[0-?]*[ -/]*[@-~]",
    rb"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?",
    rb"\x1b[PX^_][^\x1b]*(?:\x1b\\)?",
    rb"\x1b[ -/]*[0-~]",
)
_ANSI_B = re.compile(b"|".join((*_ANSI_PARTS, rb"\xc2\x9b[0-?]*[ -/]*[@-~]")))
_ANSI = re.compile("|".join((*(p.decode() for p in _ANSI_PARTS), "\x9b[0-?]*[ -/]*[@-~]")))
# Everything of a line up to its last `\r` that something follows: what a terminal overwrote.
_REWRITTEN = re.compile(rb"^[^\n]*\r(?=[^\r\n])", re.MULTILINE)
_TRAILING_CR = re.compile(rb"\r+$", re.MULTILINE)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text or "\x9b" in text else text


def final_form(data: bytes) -> bytes:
    """Lines (joined by `\\n`) as a terminal leaves them: `\\r` rewrites applied, escapes removed."""
    if b"\r" in data:
        data = _REWRITTEN.sub(b"", _TRAILING_CR.sub(b"", data))
    if b"\x1b" in data or b"\x9b" in data:  # one byte each: memchr, not a substring search
        data = _ANSI_B.sub(b"", data)
    return data


def _has_longer(data: bytes, limit: int) -> bool:
    """Whether a line of `data` (lines joined by `\\n`) is longer than `limit` bytes.

    From line end to line end at most `limit` apart, in C (`rfind`), without making the list of
    lines: a batch of 1 MiB of short lines is a step or two, where splitting it cost ~1.5 ms.
    """
    start, n = 0, len(data)
    while n - start > limit:
        nl = data.rfind(b"\n", start, start + limit + 1)
        if nl < 0:
            return True  # `limit` + 1 bytes from a line's start and no end
        start = nl + 1
    return False


@dataclass(slots=True)
class Batch:
    """Lines completed by one chunk, numbered `first` to `first + count - 1`."""

    stream: str
    #: their final forms, joined by `\\n` (never ends with one), as UTF-8 (or what the job wrote):
    #: one string of bytes, so a pattern scans them all in one call
    data: bytes
    first: int
    count: int
    #: numbers of the lines cut at MAX_LINE
    truncated: frozenset[int] = frozenset()

    def lines(self) -> list[str]:
        """Their text, decoded with replacement characters where a line is not UTF-8."""
        return self.data.decode(errors="replace").split("\n") if self.count else []


@dataclass(slots=True)
class _Pending:
    data: bytes = b""
    #: the line went past MAX_LINE: its rest is skipped up to its `\n`
    cut: bool = False


#: a splitter's whole state: the last line's number, and each stream's unended line (and whether
#: it was cut)
SplitterState = tuple[int, tuple[tuple[str, bytes, bool], ...]]


class Splitter:
    """Numbers the complete lines of a job's output, fed its output chunks in log order."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._pending: dict[str, _Pending] = {}
        #: the number of the last line completed
        self.last = 0

    def state(self) -> SplitterState:
        return self.last, tuple((k, p.data, p.cut) for k, p in self._pending.items())

    @classmethod
    def resume(cls, state: SplitterState, max_line: int = MAX_LINE) -> Splitter:
        """A splitter that goes on from `state` (another's `state()`) as that one would."""
        s = cls(max_line)
        s.last = state[0]
        for stream, data, cut in state[1]:
            s._pending[stream] = _Pending(data, cut)
        return s

    def pending_bytes(self) -> int:
        return sum(len(p.data) for p in self._pending.values())

    def pending(self, stream: str) -> bytes:
        """The line begun in `stream` and not yet ended (after its last `\\r` rewrite)."""
        p = self._pending.get(stream)
        return p.data if p is not None else b""

    def feed(self, stream: str, chunk: bytes) -> Batch:
        p = self._pending.setdefault(stream, _Pending())
        end = chunk.rfind(b"\n")
        if end < 0:
            self._keep(p, chunk)
            return Batch(stream, b"", self.last + 1, 0)
        rest = chunk[end + 1 :]
        first_cut = p.cut
        if p.cut:
            # The first line here is the rest of one already cut: only its end counts.
            nl = chunk.find(b"\n")
            head = p.data if nl >= end else b"".join((p.data, memoryview(chunk)[nl:end]))
        else:
            # One copy of the chunk, however big: no slice copied again to join it.
            head = b"".join((p.data, memoryview(chunk)[:end]))
        p.data, p.cut = b"", False
        self._keep(p, rest)
        count = head.count(b"\n") + 1
        truncated: set[int] = set()
        first = self.last + 1
        if first_cut:
            truncated.add(first)
        if len(head) > self._max and _has_longer(head, self._max):
            raw_lines = head.split(b"\n")
            for i, line in enumerate(raw_lines):
                if len(line) > self._max:
                    raw_lines[i] = line[: self._max]
                    truncated.add(first + i)
            head = b"\n".join(raw_lines)
        self.last += count
        return Batch(stream, final_form(head), first, count, frozenset(truncated))

    def flush(self) -> list[Batch]:
        """The output ended: the lines begun and not ended, stdout's first, as complete lines."""
        out = []
        for stream in sorted(self._pending, key=lambda s: s != "stdout"):
            p = self._pending[stream]
            if not p.data and not p.cut:
                continue
            self.last += 1
            cut = frozenset({self.last}) if p.cut else frozenset()
            out.append(Batch(stream, final_form(p.data), self.last, 1, cut))
            p.data, p.cut = b"", False
        return out

    def _keep(self, p: _Pending, data: bytes) -> None:
        if p.cut:
            return
        data = p.data + data
        # Only the last rewrite of a line counts: what a `\r` was followed by is forgotten, so a
        # progress bar redrawn for hours holds one redraw, not all of them.
        cr = data.rfind(b"\r", 0, len(data) - 1)
        if cr >= 0:
            data = data[cr + 1 :]
        if len(data) > self._max:
            data, p.cut = data[: self._max], True
        p.data = data
