"""The job side of the benchmarks: what the jobs under test run.

    producer.py lines --rate 1000 --duration 15 --go FILE   timestamped 100-byte lines, on time
    producer.py bulk --bytes 1073741824 --go FILE           log-like text, as fast as it goes

Both wait until FILE exists (the load generator's clients are connected by then), so the clock
starts for everyone at once. Only the standard library: this runs as a job of the server.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from common import format_lines

BLOCK = 1024 * 1024


def wait_for(path: str | None) -> None:
    while path and not os.path.exists(path):
        time.sleep(0.002)


def write_all(data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def lines(rate: float, duration: float) -> int:
    """Write `rate * duration` lines on schedule, each batch stamped with the time of its write."""
    total = round(rate * duration)
    sent = 0
    start = time.time()
    while sent < total:
        now = time.time()
        due = min(total, int((now - start) * rate) + 1)
        if due > sent:
            write_all(format_lines(sent, due - sent, time.time()))
            sent = due
        pause = start + sent / rate - time.time()
        if pause > 0:
            time.sleep(pause)
    return total


def log_block(size: int = BLOCK) -> bytes:
    """`size` bytes of varied, printable, log-like text (the same every run)."""
    rng = random.Random(42)
    levels = ["INFO", "INFO", "INFO", "WARN", "DEBUG"]
    words = ["GET", "POST", "cache", "miss", "hit", "user", "db", "query", "ok", "retry", "queue"]
    out: list[bytes] = []
    n = 0
    i = 0
    while n < size:
        line = (
            f"2025-01-{1 + i % 28:02d}T12:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000:03d}Z "
            f"{rng.choice(levels)} worker-{rng.randrange(16):02d} "
            f"{' '.join(rng.choice(words) for _ in range(rng.randrange(3, 9)))} "
            f"id={rng.getrandbits(64):016x} took={rng.random() * 100:.3f}ms\n"
        ).encode()
        out.append(line)
        n += len(line)
        i += 1
    return b"".join(out)[:size]


def bulk(nbytes: int) -> int:
    block = log_block()
    left = nbytes
    while left > 0:
        write_all(block if left >= len(block) else block[:left])
        left -= len(block)
    return nbytes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("lines", help="timestamped 100-byte lines at a fixed rate")
    p.add_argument("--rate", type=float, required=True, help="lines per second")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    p.add_argument("--go", help="wait until this file exists")
    p = sub.add_parser("bulk", help="log-like text as fast as the pipe takes it")
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--go", help="wait until this file exists")
    args = parser.parse_args()
    wait_for(args.go)
    if args.mode == "lines":
        lines(args.rate, args.duration)
    else:
        bulk(args.bytes)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
