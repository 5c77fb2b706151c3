"""Progress read from output: the forms tools print, and an explicit one. Pure, no I/O.

Recognised, the first that fits a line (or a `\\r`-rewritten segment of one) winning:

- explicit: a line `::progress 42 building wheel::` (percent, then an optional message) or
  `::progress 3/10 step three::` (current/total); the closing `::` is optional;
- OSC 9;4, as Windows Terminal and ConEmu read it: `ESC ] 9 ; 4 ; STATE ; PERCENT` ended by BEL or
  `ESC \\`; STATE 0 clears, 1 is normal, 2 error, 3 indeterminate, 4 paused;
- tqdm: `desc:  42%|████▏     | 42/100 [00:01<00:02, 41.0it/s]`;
- pip: `━━━━━━━━━━━━╸━━━━━━━━━━━ 5.2/10.0 MB 3.1 MB/s eta 0:00:02`;
- a bar in brackets: `[#####     ]` or `[====>     ]`;
- a percentage `42%` and/or a count `3/10` anywhere in the line.

A value is `{percent?, current?, total?, message?, state?}`; `percent` is derived from a count when
it is not given.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["OSC_STATES", "Throttle", "detect", "scan_osc"]

Progress = dict[str, Any]

_EXPLICIT = re.compile(
    r"^\s*::progress\s+(?:(\d{1,3}(?:\.\d+)?)%?|(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?))"
    r"(?:\s+(.*?))?\s*(?:::)?\s*$"
)
_TQDM = re.compile(
    r"^\s*(?:(.*?):\s*)?(\d{1,3})%\|[^|]*\|\s*(\d+(?:\.\d+)?[kMG]?)/(\d+(?:\.\d+)?[kMG]?)"
)
_PIP = re.compile(r"[━─╸╺]+\s+(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)\s*([kMG]?i?B|[kMG]?bytes)?")
_BAR = re.compile(r"\[([#=>*]*)([ .\-]*)\]")
_PERCENT = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)\s?%")
_COUNT = re.compile(r"(?<![\w./:-])(\d+)\s?/\s?(\d+)(?![\w/.:-])")
_OSC = re.compile(rb"\x1b\]9;4;([0-4])(?:;(\d{1,3}))?(?:\x07|\x1b\\)")
#: where an unended OSC 9;4 may begin at the end of a chunk
_OSC_OPEN = re.compile(rb"\x1b(?:\](?:9(?:;(?:4(?:;[0-4]?(?:;\d{0,3})?)?)?)?)?)?$")
#: OSC 9;4 states, by their number
OSC_STATES = ("clear", "normal", "error", "indeterminate", "paused")
#: characters without which a segment holds no form but OSC (a cheap test before any regex)
_HINTS = ("%", "/", "[", "::progress")


def _num(s: str) -> float | int:
    f = float(s)
    return int(f) if f.is_integer() and "." not in s else f


def _percent(current: float, total: float) -> float | None:
    return round(100 * current / total, 1) if total > 0 and 0 <= current <= total else None


def _clean(value: Progress) -> Progress:
    return {k: v for k, v in value.items() if v is not None}


def detect(segment: str) -> Progress | None:
    """The progress a line (or a rewritten segment of one, escapes removed) shows, if any."""
    if len(segment) > 4096 or not any(h in segment for h in _HINTS):
        return None
    m = _EXPLICIT.match(segment)
    if m:
        pct, cur, tot, message = m.groups()
        if pct is not None:
            value: Progress = {"percent": min(float(pct), 100.0)}
        else:
            value = {"current": _num(cur), "total": _num(tot)}
            value["percent"] = _percent(value["current"], value["total"])
        return _clean({**value, "message": message or None})
    m = _TQDM.search(segment)
    if m:
        desc, pct, cur, tot = m.groups()
        value = {"percent": float(pct), "message": desc.strip() or None if desc else None}
        if cur[-1].isdigit() and tot[-1].isdigit():
            value.update(current=_num(cur), total=_num(tot))
        return _clean(value)
    m = _PIP.search(segment)
    if m:
        cur, tot, unit = m.groups()
        current, total = _num(cur), _num(tot)
        return _clean(
            {"percent": _percent(current, total), "current": current, "total": total, "unit": unit}
        )
    return _generic(segment)


def _generic(segment: str) -> Progress | None:
    value: Progress = {}
    m = _BAR.search(segment)
    if m and len(m.group(1)) + len(m.group(2)) >= 5 and m.group(1):
        filled, empty = m.group(1), m.group(2)
        value["percent"] = round(100 * len(filled.rstrip(">")) / (len(filled) + len(empty)), 1)
    m = _PERCENT.search(segment)
    if m and float(m.group(1)) <= 100:
        value["percent"] = float(m.group(1))
    m = _COUNT.search(segment)
    if m:
        current, total = int(m.group(1)), int(m.group(2))
        if 0 < total and current <= total:
            value.update(current=current, total=total)
            value.setdefault("percent", _percent(current, total))
    return _clean(value) or None


def scan_osc(data: bytes) -> tuple[list[Progress], bytes]:
    """OSC 9;4 sequences in `data`; and the unended one at its end, to put before the next chunk."""
    found: list[Progress] = []
    for m in _OSC.finditer(data):
        state = int(m.group(1))
        value: Progress = {"state": OSC_STATES[state]}
        if m.group(2) is not None and state in (1, 2, 4):
            value["percent"] = float(min(int(m.group(2)), 100))
        found.append(value)
    tail = _OSC_OPEN.search(data[-16:])
    return found, tail.group(0) if tail else b""


class Throttle:
    """At most one value per `interval` seconds; the one held back is given when due (or at the
    end), and a value equal to the last given is not given again."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._last: Progress | None = None
        self._at = float("-inf")
        #: the newest value not given yet
        self.held: Progress | None = None

    def offer(self, value: Progress, now: float) -> Progress | None:
        """`value` if it may go now; else it is held (replacing any held before)."""
        if value == self._last:
            self.held = None
            return None
        if now - self._at >= self.interval:
            return self._give(value, now)
        self.held = value
        return None

    def due(self, now: float) -> float | None:
        """Seconds until the held value may go (0: now); None if none is held."""
        if self.held is None:
            return None
        return max(0.0, self._at + self.interval - now)

    def take(self, now: float) -> Progress | None:
        """The held value, given now whatever the interval (when due, or at the end)."""
        if self.held is None:
            return None
        return self._give(self.held, now)

    def _give(self, value: Progress, now: float) -> Progress:
        self._last, self._at, self.held = value, now, None
        return value
