"""Event-loop lag: how late the loop runs a timer, sampled on a fixed grid, as percentiles."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["LoopLag"]


class LoopLag:
    """A task that wakes every `interval` seconds and records how late it woke, in ms.

    The samples are taken on a fixed grid: after a stall, every tick that fell inside it is
    recorded with its own lateness (a 500 ms stall makes ten samples at 50 ms, not one), so the
    percentiles say how long the loop was unavailable, not how often the probe got to run.
    """

    def __init__(self, interval: float = 0.05, window: int = 1200) -> None:
        self.interval = interval
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None
        #: given each sample too, in seconds (a histogram's `observe`)
        self.observe: Callable[[float], None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="jobcast-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            await asyncio.sleep(due - loop.time())
            now = loop.time()
            while due <= now:
                self._samples.append((now - due) * 1000)
                if self.observe is not None:
                    self.observe(now - due)
                due += self.interval

    @property
    def window_seconds(self) -> float:
        return (self._samples.maxlen or 0) * self.interval

    def snapshot(self, seconds: float | None = None) -> dict[str, float]:
        """p50, p99 and max of the lag in ms over the last `seconds` (default: the whole window,
        the last minute at the defaults)."""
        samples = list(self._samples)
        if seconds is not None:
            samples = samples[-max(1, round(seconds / self.interval)) :]
        ordered = sorted(samples)
        if not ordered:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1], 2)}
