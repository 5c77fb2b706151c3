"""What the request handlers share: settings, store, supervisor, ledger, pastes, and the
streaming statistics."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from ..config import Settings
from ..looplag import LoopLag
from ..metrics import Metrics
from ..pastes import Pastes
from ..policy import Policy as RunPolicy
from ..retention import Policy
from ..store import Store
from ..trace import Trace

if TYPE_CHECKING:
    from ..runner.supervisor import Supervisor

__all__ = ["STATE", "Follower", "State", "Stats"]


@dataclass(eq=False, slots=True)
class Follower:
    """One streaming connection. `blocked_since` is set while a write waits for the client to read."""

    kind: str
    job: str | None
    transport: asyncio.BaseTransport | None
    blocked_since: float | None = None


@dataclass
class Stats:
    followers: set[Follower] = field(default_factory=set)
    per_job: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    bytes_sent: int = 0
    stalled_disconnects: int = 0
    loop_lag: LoopLag = field(default_factory=LoopLag)
    #: (monotonic time, events_sent, bytes_sent), one a second (`sample`), for the rates
    samples: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=11))

    def add(self, f: Follower) -> None:
        self.followers.add(f)
        if f.job is not None:
            self.per_job[f.job] += 1

    def remove(self, f: Follower) -> None:
        self.followers.discard(f)
        if f.job is not None:
            self.per_job[f.job] -= 1
            if self.per_job[f.job] <= 0:
                del self.per_job[f.job]

    def sample(self) -> None:
        self.samples.append((time.monotonic(), self.events_sent, self.bytes_sent))

    def rates(self) -> dict[str, float]:
        """Events and bytes sent per second over the last `seconds` (up to 10, since samples
        are taken once a second; 0 before there are two)."""
        now = (time.monotonic(), self.events_sent, self.bytes_sent)
        first = self.samples[0] if self.samples else now
        seconds = now[0] - first[0]
        if seconds <= 0:
            return {"seconds": 0.0, "events_per_second": 0.0, "bytes_per_second": 0.0}
        return {
            "seconds": round(seconds, 2),
            "events_per_second": round((now[1] - first[1]) / seconds, 1),
            "bytes_per_second": round((now[2] - first[2]) / seconds, 1),
        }

    def snapshot(self, lag_seconds: float | None = None) -> dict[str, object]:
        kinds = Counter(f.kind for f in self.followers)
        return {
            "clients": {
                "total": len(self.followers),
                **{k: kinds.get(k, 0) for k in ("sse", "ws", "log", "stream")},
            },
            "per_job": dict(self.per_job),
            "events_sent": self.events_sent,
            "bytes_sent": self.bytes_sent,
            "stalled_disconnects": self.stalled_disconnects,
            "rates": self.rates(),
            "loop_lag_ms": self.loop_lag.snapshot(lag_seconds),
        }


@dataclass
class State:
    settings: Settings
    store: Store
    supervisor: Supervisor
    trace: Trace
    pastes: Pastes
    stats: Stats = field(default_factory=Stats)
    #: the Prometheus instruments (`GET /metrics`), a registry of this app's own
    metrics: Metrics = field(default_factory=Metrics)
    #: who created each job not yet finished, for the ledger's job.start and job.finish
    owners: dict[str, str] = field(default_factory=dict)
    #: the retention settings, applied in the background and by `POST /prune` without rules
    retention: Policy = field(default_factory=Policy)
    #: what may run (`[policy]`, `[templates]`); replaced whole when the config is reloaded
    policy: RunPolicy = field(default_factory=RunPolicy)
    #: `POST /jobs` admitted but not yet handed to the supervisor: they count as queued
    admitting: int = 0
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: float = field(default_factory=time.time)
    #: shutdown has begun: the jobs are being ended, and their last events still go out
    stopping: bool = False
    #: the jobs have ended: streams finish once they have sent what there is
    closing: bool = False

    async def guarded(self, follower: Follower, write: Awaitable[None]) -> None:
        """Await a write, marking the follower blocked meanwhile so the stall sweeper can see it."""
        follower.blocked_since = time.monotonic()
        try:
            await write
        finally:
            follower.blocked_since = None

    def sweep_stalled(self) -> int:
        """Disconnect followers whose write has waited longer than `stall_timeout_seconds`."""
        limit = time.monotonic() - self.settings.stall_timeout_seconds
        stalled = [
            f
            for f in self.stats.followers
            if f.blocked_since is not None and f.blocked_since < limit
        ]
        for f in stalled:
            if f.transport is not None:
                f.transport.abort() if hasattr(f.transport, "abort") else f.transport.close()
            f.blocked_since = None
        self.stats.stalled_disconnects += len(stalled)
        return len(stalled)


STATE = web.AppKey("jobcast_state", State)
