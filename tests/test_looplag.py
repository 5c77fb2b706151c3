"""The loop-lag probe: a stall counts for every tick it swallowed, not once."""

from __future__ import annotations

import asyncio
import time

from jobcast.looplag import LoopLag


async def test_a_stall_is_counted_at_every_tick_it_covered():
    lag = LoopLag(interval=0.01, window=1000)
    assert lag.snapshot() == {"p50": 0.0, "p99": 0.0, "max": 0.0}
    lag.start()
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # noqa: ASYNC251 - the point: block the loop, as a slow statement would
        await asyncio.sleep(0.05)
    finally:
        await lag.stop()
    snap = lag.snapshot()
    assert snap["max"] >= 250
    # About 10 ticks before the stall, 30 inside it (300, 290, ... 10 ms late), 5 after: the
    # median is one of the stalled ones. Counted once, the stall would leave the median near 0.
    assert snap["p50"] >= 50
    assert snap["p50"] <= snap["p99"] <= snap["max"]


def test_snapshot_over_the_last_seconds_only() -> None:
    lag = LoopLag(interval=0.05, window=100)
    lag._samples.extend([500.0] * 50 + [1.0] * 20)  # a stall, then a second of quiet
    assert lag.snapshot()["max"] == 500.0
    assert lag.snapshot(1) == {"p50": 1.0, "p99": 1.0, "max": 1.0}
