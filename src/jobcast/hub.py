"""Tail wake-ups: "job X has new events". Holds no events, only one future per key being waited on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable

__all__ = ["Hub"]


class Hub:
    """One shared signal per key: `notify` wakes every waiter at once, whatever their number.

    There is no timer per waiter (at a thousand followers that is a hundred thousand timers a
    second); instead a ticker wakes every waiter about once per `tick_seconds`, and each decides
    for itself whether a heartbeat or a timeout is due. Waiters re-check the store after waking.
    """

    def __init__(self, tick_seconds: float = 1.0) -> None:
        self._futures: dict[Hashable, asyncio.Future[None]] = {}
        self._tick_seconds = tick_seconds
        self._ticker: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="jobcast-hub-tick")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            self.wake_all()

    def notify(self, key: Hashable) -> None:
        fut = self._futures.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def wake_all(self) -> None:
        futures, self._futures = self._futures, {}
        for fut in futures.values():
            if not fut.done():
                fut.set_result(None)

    async def wait(self, key: Hashable) -> None:
        """Until `notify(key)`, the next tick, or `close()`."""
        if self.closed:
            return
        fut = self._futures.get(key)
        if fut is None:
            fut = self._futures[key] = asyncio.get_running_loop().create_future()
        await fut

    async def close(self) -> None:
        self.closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.wake_all()
