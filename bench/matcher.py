"""The matcher's own CPU per MB of output, without a server: `Splitter.feed` then `Patterns.find`
(the 5 extractors of `run.py extract-bulk`) over log-like text cut into events as a pipe gives
them. CPU time of this process (not wall time), the least of --runs: a figure that a machine
shared with other work disturbs far less than a server's throughput.

Events of 1 MiB (BATCH_MAX, what a fast producer's output becomes), over three texts: `periodic`
is `producer.py bulk`'s (its 1 MiB block repeated, so every event is cut at the same place of it);
`varied` is the same lines shuffled (no period: a line is carried from one event to the next as
in real output); `matching` is `varied` with a line that an extractor matches every 2,000 lines.

    .venv/bin/python bench/matcher.py [--mib 64] [--runs 5]

To compare with another checkout's code: `PYTHONPATH=/other/src .venv/bin/python bench/matcher.py`.
"""

from __future__ import annotations

import argparse
import random
import time

from producer import BLOCK, log_block
from run import BENCH_EXTRACTORS

from jobcast.extract import Extractor, Patterns
from jobcast.lines import Splitter


def _events(text: bytes) -> list[bytes]:
    # A fast producer's events are BATCH_MAX (1 MiB) each, cut wherever the pipe read ended.
    return [text[i : i + BLOCK] for i in range(0, len(text), BLOCK)]


def texts(mib: int) -> dict[str, list[bytes]]:
    block = log_block()
    size = mib * BLOCK
    periodic = (block * (mib + 1))[:size]
    rng = random.Random(3)
    lines = periodic.split(b"\n")
    rng.shuffle(lines)  # the same lines, no longer a 1 MiB period
    varied = b"\n".join(lines)[:size]
    for i in range(0, len(lines), 2000):
        lines[i] = b"ERROR: disk full on worker-%02d" % (i % 16)
    matching = b"\n".join(lines)[:size]
    return {
        "periodic": _events(periodic),
        "varied": _events(varied),
        "matching": _events(matching),
    }


def cpu_ms_per_mb(events: list[bytes], runs: int) -> tuple[float, int]:
    patterns = Patterns([Extractor.model_validate(x) for x in BENCH_EXTRACTORS])
    mb = sum(map(len, events)) / 1e6
    best, found = float("inf"), 0
    for _ in range(runs):
        splitter = Splitter()
        t0 = time.process_time()
        found = sum(len(list(patterns.find(splitter.feed("stdout", ev)))) for ev in events)
        best = min(best, time.process_time() - t0)
    return best * 1000 / mb, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB of text in each")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for name, events in texts(args.mib).items():
        ms, found = cpu_ms_per_mb(events, args.runs)
        print(f"{name:9s} {ms:6.3f} ms/MB  ({len(events)} events, {found} matches)")


if __name__ == "__main__":
    main()
