"""Tail wake-ups: "job X has new events". Holds no events, only what waits on each key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["Hub", "Listener"]

logger = logging.getLogger("jobcast.hub")

Listener = Callable[[Any], bool]
"""Called with each new item for its key, or with None when everyone must wake (a tick, closing).
Returns whether it wants the next one; once it returns False it is forgotten."""


class Hub:
    """One shared signal per key: `notify` wakes every waiter at once, whatever their number.

    Two kinds of subscriber. A waiter awaits the key's one shared future and re-reads the store
    when it resolves. A listener is a plain function called in `notify` with the new item itself:
    a follower parked at the tail writes it to its client right there, which spares a task
    wake-up and a store read per client per event, the bulk of the cost of fan-out.

    There is no timer per subscriber (at a thousand followers that is a hundred thousand timers a
    second); instead a ticker wakes everyone about once per `tick_seconds`, and each decides for
    itself whether a heartbeat or a timeout is due.
    """

    def __init__(self, tick_seconds: float = 1.0) -> None:
        self._futures: dict[Hashable, asyncio.Future[None]] = {}
        self._listeners: dict[Hashable, list[Listener]] = {}
        self._tick_seconds = tick_seconds
        self._ticker: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="jobcast-hub-tick")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            self.wake_all()

    def notify(self, key: Hashable, item: Any = None) -> None:
        fut = self._futures.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        listeners = self._listeners.get(key)
        if listeners:
            self._listeners[key] = [f for f in listeners if _call(f, item)]

    def listen(self, key: Hashable, listener: Listener) -> None:
        """Call `listener` with every item notified for `key` until it returns False."""
        self._listeners.setdefault(key, []).append(listener)

    def listening(self, key: Hashable) -> int:
        """How many listeners `key` has now."""
        return len(self._listeners.get(key, ()))

    def has_subscribers(self, key: Hashable) -> bool:
        """True while anyone waits or listens on `key`."""
        return key in self._futures or self.listening(key) > 0

    def wake_all(self) -> None:
        futures, self._futures = self._futures, {}
        for fut in futures.values():
            if not fut.done():
                fut.set_result(None)
        listeners, self._listeners = self._listeners, {}
        for group in listeners.values():
            for f in group:
                _call(f, None)

    async def wait(self, key: Hashable) -> None:
        """Until `notify(key)`, the next tick, or `close()`."""
        if self.closed:
            return
        fut = self._futures.get(key)
        if fut is None:
            fut = self._futures[key] = asyncio.get_running_loop().create_future()
        # Shielded: the future is shared, and one waiter's cancellation must not cancel it for all.
        await asyncio.shield(fut)

    async def close(self) -> None:
        self.closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.wake_all()


def _call(listener: Listener, item: Any) -> bool:
    try:
        return listener(item)
    except Exception:
        # One broken subscriber must not stop the others, nor the append that notified them.
        logger.exception("a listener failed; dropping it")
        return False
