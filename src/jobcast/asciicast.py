"""A job's event log as an asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/).

One header line, then one JSON array a line: `[t, "o", text]` for output, `[t, "i", text]` for
input whose content was recorded (a job started with `record_input`, for a reader who may see
it), `[t, "r", "COLSxROWS"]` for a resize; `t` is seconds since the job started. The encoder is
fed events batch by batch, so a recording is never built whole.
"""

from __future__ import annotations

import base64
import codecs
import re
import shlex
from collections.abc import Iterable
from typing import Any

import orjson

from .models import RECORDED_INPUT, Event, EventType, Job

__all__ = ["DEFAULT_TERM", "CastEncoder", "header"]

#: a newline without the carriage return a terminal's output processing would have put before it
_BARE_LF = re.compile(r"(?<!\r)\n")
#: what a PTY job's TERM is when its spec sets none (runner/pty.py sets the same)
DEFAULT_TERM = "xterm-256color"


def header(job: Job, cols: int, rows: int, term: str) -> bytes:
    """The first line: the terminal's size when the job started, and what it ran."""
    head: dict[str, Any] = {
        "version": 2,
        "width": cols,
        "height": rows,
        "timestamp": int(job.started_at or job.created_at),
        "command": job.command if job.command is not None else shlex.join(job.argv),
        "env": {"TERM": term},
    }
    if job.name:
        head["title"] = job.name
    return orjson.dumps(head) + b"\n"


class CastEncoder:
    """Turns a job's events, in seq order, into the lines after the header.

    Output is decoded incrementally, a decoder per stream: a character split across two chunks
    (or two batches) comes out whole in the later line, never as replacement characters. Bytes
    that are not UTF-8 at all become U+FFFD, as a terminal would show them.
    """

    def __init__(self, job: Job, *, inputs: bool = False) -> None:
        """`inputs`: write the recorded input as `i` events (for a reader who may drive the job)."""
        self._start = job.started_at or job.created_at
        self._last = 0.0
        # A job without a terminal wrote bare newlines, which a terminal's output processing
        # (onlcr) would have turned into CR LF: the player's terminal does no such thing. A
        # CR LF already there (a typescript's, say) is left as it is.
        self._crlf = not job.pty
        self._decoders = {
            t: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for t in (EventType.STDOUT, EventType.STDERR)
        }
        # Input as typed: a character may be split across two sends like output across reads.
        self._typed = codecs.getincrementaldecoder("utf-8")(errors="replace") if inputs else None

    def _time(self, ts: float) -> float:
        # Players expect times that never go back; the clock of a restarted server might.
        self._last = max(self._last, ts - self._start)
        return round(self._last, 6)

    def _line(self, ts: float, code: str, text: str) -> bytes:
        return orjson.dumps([self._time(ts), code, text]) + b"\n"

    def encode(self, events: Iterable[Event]) -> bytes:
        out: list[bytes] = []
        for ev in events:
            if ev.type in self._decoders:
                text = self._decoders[ev.type].decode(ev.raw or b"")
                if text:
                    out.append(self._line(ev.ts, "o", self._output(text)))
            elif ev.type is EventType.RESIZE:
                out.append(self._line(ev.ts, "r", f"{ev.data['cols']}x{ev.data['rows']}"))
            elif ev.type is EventType.INPUT and self._typed is not None:
                # The log holds an input's length only, unless the job records its input.
                kept = ev.data.get(RECORDED_INPUT)
                if isinstance(kept, str) and (text := self._typed.decode(base64.b64decode(kept))):
                    out.append(self._line(ev.ts, "i", text))
        return b"".join(out)

    def finish(self) -> bytes:
        """What is left of a character cut off at the end of the output."""
        out = [
            self._line(self._start + self._last, "o", self._output(text))
            for d in self._decoders.values()
            if (text := d.decode(b"", final=True))
        ]
        return b"".join(out)

    def _output(self, text: str) -> str:
        return _BARE_LF.sub("\r\n", text) if self._crlf else text
