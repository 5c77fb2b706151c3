"""Trace ledger appends: latency of one awaited `record` (the cost a traced request pays), alone
and 100 at once, and the longest the event loop was held meanwhile.

    .venv/bin/python bench/trace.py
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from jobcast.trace import Trace


async def _lag_probe(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        worst[0] = max(worst[0], time.perf_counter() - t - 0.001)


async def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        trace = Trace(Path(d), max_bytes=1 << 20, keep_files=2)
        await trace.open()
        stop, worst = asyncio.Event(), [0.0]
        probe = asyncio.create_task(_lag_probe(stop, worst))
        one = []
        for i in range(5000):
            t = time.perf_counter()
            await trace.record("job.create", who="local", job=f"j{i}", detail={"argv": ["true"]})
            one.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(50):
            await asyncio.gather(*(trace.record("job.input", who="local") for _ in range(100)))
        burst = (time.perf_counter() - t) / 5000
        stop.set()
        await probe
        await trace.close()
    q = statistics.quantiles(one, n=100)
    print(f"record, one at a time: p50 {q[49] * 1e6:.0f} us, p99 {q[98] * 1e6:.0f} us")
    print(f"record, 100 at once: {burst * 1e6:.1f} us per entry (group-written)")
    print(f"loop lag, worst, over 10,000 appends with rotations: {worst[0] * 1e3:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
