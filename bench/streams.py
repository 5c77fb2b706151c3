"""The runner's own cost of reading a job's output: stdout alone, stdout and stderr alternating,
and stderr merged; and its bulk throughput.

    .venv/bin/python bench/streams.py [--rate 10000] [--duration 5] [--bulk-mib 512] [--runs 3]

Each case runs a real job under `LocalProcess.run` on uvloop, in this process, with a sink that
only counts events, so what is measured is the pumping alone (reads, batching, the event loop):
this process's CPU time per second of the job, and the events it made. The job (bench/producer.py's
style: writes paced by the clock, one `os.write` per 100-byte line) runs on its own CPU time. To
compare two versions, run it with PYTHONPATH pointing at each one's `src/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import time

import uvloop

from jobcast.models import EventType
from jobcast.runner.backend import SpawnRequest
from jobcast.runner.process import spawn_pipes

PACED = """
import os, sys, time
rate, duration, mode = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
line = b"x" * 99 + b"\\n"
total, sent, start = int(rate * duration), 0, time.monotonic()
while sent < total:
    due = int((time.monotonic() - start) * rate) + 1
    while sent < min(due, total):
        os.write(2 if mode == "alternate" and sent % 2 else 1, line)
        sent += 1
    time.sleep(0.001)
"""

BULK = """
import os, sys
block, left = b"y" * (1 << 20), int(sys.argv[1]) << 20
while left > 0:
    left -= os.write(1, block[: min(left, len(block))])
"""


class Counter:
    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.streams: set[EventType] = set()

    async def __call__(self, stream: EventType, data: bytes) -> None:
        self.events += 1
        self.bytes += len(data)
        self.streams.add(stream)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_job(argv: list[str], merge: bool, window: float) -> tuple[float, float, Counter]:
    """Wall seconds, this process's CPU seconds, and what the sink saw."""
    # Only asked for when merging, so that the same script measures versions without it.
    merging = {"merge_stderr": True} if merge else {}
    request = SpawnRequest(argv=argv, cwd=os.getcwd(), env=dict(os.environ), **merging)
    sink = Counter()

    async def main() -> None:
        proc = spawn_pipes(request)
        assert await proc.run(sink, lambda: window) == 0

    c0, t0 = cpu(), time.monotonic()
    uvloop.run(main())
    return time.monotonic() - t0, cpu() - c0, sink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="lines/s (default 10,000)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--bulk-mib", type=int, default=512, help="MiB for the bulk case")
    parser.add_argument("--window-ms", type=float, default=10.0, help="batch window (10)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each case; medians")
    args = parser.parse_args()
    window = args.window_ms / 1000
    print(f"| case | runner CPU, % of a core | events/s | ({args.runs} runs, median) |")
    print("|---|---:|---:|---|")
    for name, mode, merge in [
        ("stdout alone", "stdout", False),
        ("stdout and stderr alternating", "alternate", False),
        ("alternating, stderr merged", "alternate", True),
    ]:
        if merge and "merge_stderr" not in {f.name for f in dataclasses.fields(SpawnRequest)}:
            continue
        argv = [sys.executable, "-c", PACED, str(args.rate), str(args.duration), mode]
        runs = [run_job(argv, merge, window) for _ in range(args.runs)]
        load = statistics.median(100 * c / w for w, c, _ in runs)
        rate = statistics.median(s.events / w for w, _, s in runs)
        print(f"| {name}, {args.rate:,.0f} lines/s | {load:.1f} | {rate:,.0f} | |")
    argv = [sys.executable, "-c", BULK, str(args.bulk_mib)]
    runs = [run_job(argv, False, window) for _ in range(args.runs)]
    mbps = statistics.median(s.bytes / w / 1e6 for w, _, s in runs)
    print(f"| bulk, {args.bulk_mib} MiB on stdout | MB/s: {mbps:,.0f} | | |")


if __name__ == "__main__":
    main()
