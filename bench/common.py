"""What the driver, the load generator and the job-side producer share: the line format, limits."""

from __future__ import annotations

import resource

__all__ = [
    "LINE_BYTES",
    "NOFILE",
    "format_lines",
    "parse_line",
    "percentile",
    "raise_nofile",
]

#: every timestamped line is exactly this long, newline included
LINE_BYTES = 100
#: file descriptors wanted by the server and the load generator (1,000 clients need > 1,024)
NOFILE = 65536

# "0000000042 1795457168.907136 " + filler + "\n"
_SEQ_END = 10
_TS_START, _TS_END = 11, 28
_FILLER = b"x" * LINE_BYTES


def format_lines(first_seq: int, count: int, ts: float) -> bytes:
    """`count` lines numbered from `first_seq`, all stamped `ts` (the time of the write)."""
    stamp = b" %.6f " % ts
    pad = _FILLER[: LINE_BYTES - 1 - _SEQ_END - len(stamp)]
    return b"".join(
        b"%010d%s%s\n" % (seq, stamp, pad) for seq in range(first_seq, first_seq + count)
    )


def parse_line(line: str) -> tuple[int, float]:
    """(seq, producer's time.time()) of one line without its newline; ValueError if malformed."""
    if len(line) != LINE_BYTES - 1:
        raise ValueError(f"a line of {len(line)} characters, not {LINE_BYTES - 1}: {line[:40]!r}")
    return int(line[:_SEQ_END]), float(line[_TS_START:_TS_END])


def raise_nofile() -> None:
    """Raise this process's open-file limit (usable as a `preexec_fn`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def percentile(hist: dict[int, int], p: float) -> int | None:
    """The bin holding the p-th percentile (0-100) of a histogram {bin: count}; None if empty."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, round(total * p / 100))
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return b
    return max(hist)
