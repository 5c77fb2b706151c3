"""What the request handlers share: settings, store, supervisor, ledger, pastes, and the
streaming statistics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
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

logger = logging.getLogger("jobcast.clients")


@dataclass(eq=False, slots=True)
class Follower:
    """One streaming connection. `blocked_since` is set while a write waits for the client to read.

    Its transport counts what it sends here, on its own object: no shared counter is touched per
    write, and `Stats` adds them up when asked."""

    kind: str
    job: str | None
    transport: asyncio.BaseTransport | None
    blocked_since: float | None = None
    events_sent: int = 0
    bytes_sent: int = 0


#: a sample of what was sent: (monotonic time, events, bytes, {job: (events, bytes)})
_Sample = tuple[float, int, int, dict[str, tuple[int, int]]]


@dataclass
class Stats:
    """The streaming clients, and what they were sent: counted by each follower, added up here
    for `/stats` and `/metrics`, sampled once a second (`sample`) for the rates."""

    followers: set[Follower] = field(default_factory=set)
    per_job: Counter[str] = field(default_factory=Counter)
    stalled_disconnects: int = 0
    #: `/ws` clients served by the firehose now (api/mux.py: `Firehose`)
    firehose: int = 0
    #: streaming clients that have gone, ever (what the garbage collection goes by)
    gone: int = 0
    loop_lag: LoopLag = field(default_factory=LoopLag)
    samples: deque[_Sample] = field(default_factory=lambda: deque(maxlen=_RATE_SAMPLES))
    clock: Callable[[], float] = time.monotonic
    #: what followers that have left were sent: in all, and of jobs that still have followers
    _gone: list[int] = field(default_factory=lambda: [0, 0])
    _gone_per_job: dict[str, list[int]] = field(default_factory=dict)

    def add(self, f: Follower) -> None:
        self.followers.add(f)
        if f.job is not None:
            self.per_job[f.job] += 1
        if logger.isEnabledFor(logging.DEBUG):
            fields = {"event": "client.joined", "transport": f.kind, "job": f.job}
            logger.debug(
                "%s client joined%s (%d streaming)",
                f.kind,
                f" job {f.job}" if f.job else "",
                len(self.followers),
                extra={"fields": fields},
            )

    def remove(self, f: Follower) -> None:
        if f not in self.followers:
            return
        self.followers.discard(f)
        self._gone[0] += f.events_sent
        self._gone[1] += f.bytes_sent
        self.gone += 1
        if f.job is not None:
            self.per_job[f.job] -= 1
            if self.per_job[f.job] <= 0:
                del self.per_job[f.job]
                self._gone_per_job.pop(f.job, None)  # no rate shown for it any more
            else:
                gone = self._gone_per_job.setdefault(f.job, [0, 0])
                gone[0] += f.events_sent
                gone[1] += f.bytes_sent
        if logger.isEnabledFor(logging.DEBUG):
            fields: dict[str, object] = {"event": "client.left", "transport": f.kind, "job": f.job}
            fields |= {"events_sent": f.events_sent, "bytes_sent": f.bytes_sent}
            logger.debug(
                "%s client left%s after %d events, %d bytes (%d streaming)",
                f.kind,
                f" job {f.job}" if f.job else "",
                f.events_sent,
                f.bytes_sent,
                len(self.followers),
                extra={"fields": fields},
            )

    @property
    def events_sent(self) -> int:
        return self._gone[0] + sum(f.events_sent for f in self.followers)

    @property
    def bytes_sent(self) -> int:
        return self._gone[1] + sum(f.bytes_sent for f in self.followers)

    def _now(self) -> _Sample:
        jobs = {j: (e, b) for j, (e, b) in self._gone_per_job.items()}
        events, sent = self._gone
        for f in self.followers:
            events += f.events_sent
            sent += f.bytes_sent
            if f.job is not None:
                e, b = jobs.get(f.job, (0, 0))
                jobs[f.job] = (e + f.events_sent, b + f.bytes_sent)
        return self.clock(), events, sent, jobs

    def sample(self) -> None:
        self.samples.append(self._now())

    def rates(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Events and bytes sent per second over the last `window_seconds` (up to 10: samples
        are taken once a second; 0 before the first), in all and for each followed job."""
        now = self._now()
        first = self.samples[0] if self.samples else now
        total = _rate(now[0] - first[0], now[1] - first[1], now[2] - first[2])
        jobs: dict[str, dict[str, float]] = {}
        for job, clients in self.per_job.items():
            then = next((s for s in self.samples if job in s[3]), None)
            rate = {"events_per_second": 0.0, "bytes_per_second": 0.0}
            if then is not None:
                (e1, b1), (e0, b0) = now[3].get(job, (0, 0)), then[3][job]
                rate = _rate(now[0] - then[0], e1 - e0, b1 - b0)
                del rate["window_seconds"]
            jobs[job] = {"clients": clients, **rate}
        return total, jobs

    def snapshot(self, lag_seconds: float | None = None) -> dict[str, object]:
        kinds = Counter(f.kind for f in self.followers)
        rates, jobs = self.rates()
        return {
            "clients": {
                "total": len(self.followers),
                **{k: kinds.get(k, 0) for k in _TRANSPORTS},
                "mux_firehose": self.firehose,
                # the drop-in profiles' streams (api/compat), whatever their kind
                "compat": sum(n for k, n in kinds.items() if k not in _TRANSPORTS),
            },
            "per_job": dict(self.per_job),
            "events_sent": self.events_sent,
            "bytes_sent": self.bytes_sent,
            "stalled_disconnects": self.stalled_disconnects,
            "rates": rates,
            "jobs": jobs,
            "loop_lag_ms": self.loop_lag.snapshot(lag_seconds),
        }


#: the kinds of jobcast's own streaming transports (a drop-in profile's followers have others)
_TRANSPORTS = ("sse", "ws", "log", "stream", "mux")

#: samples kept for the rates: the last ten seconds
_RATE_SAMPLES = 11


def _rate(seconds: float, events: int, sent: int) -> dict[str, float]:
    if seconds <= 0:
        return {"window_seconds": 0.0, "events_per_second": 0.0, "bytes_per_second": 0.0}
    return {
        "window_seconds": round(seconds, 2),
        # A job whose followers all left and came back starts over: never a negative rate.
        "events_per_second": round(max(0, events) / seconds, 1),
        "bytes_per_second": round(max(0, sent) / seconds, 1),
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
