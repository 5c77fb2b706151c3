"""The server's Prometheus instruments, in a registry of its own (one per app, never the global one).

Two kinds of figure. Those that happen at a moment (a job ends, a batch commits, the loop wakes
late) are counters and histograms moved there and then, once per job or per batch, never once
per event per client. Those that exist already as plain numbers (clients connected, events and
bytes sent, which the transports count anyway; output dropped, which each job's cap counts) are
read at scrape time by a collector (`api/metrics.py`), so the fan-out loop and the output path
pay nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

from .models import Event, EventType

__all__ = ["Metrics"]

_DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
_APPEND_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """A server's instruments. `observe(events)` takes the lifecycle events as they are logged."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.jobs_started = Counter("jobcast_jobs_started", "Jobs that started running", registry=r)
        self.jobs_finished = Counter(
            "jobcast_jobs_finished", "Jobs that ended, by final status", ["status"], registry=r
        )
        self.job_duration = Histogram(
            "jobcast_job_duration_seconds",
            "How long jobs ran, from start to end",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.extraction_matches = Counter(
            "jobcast_extraction_matches",
            "Extractor matches recorded as `extraction` events",
            registry=r,
        )
        #: one observation per committed batch of the store's writer, from its thread
        self.append_latency = Histogram(
            "jobcast_event_log_append_seconds",
            "From a write's submission to the commit of its batch (the event log's append)",
            buckets=_APPEND_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "jobcast_event_loop_lag_seconds",
            "How late the event loop ran a 50 ms timer (a stall counts at every tick it covered)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        for name in ("succeeded", "failed", "cancelled", "timed_out", "lost"):
            self.jobs_finished.labels(name)  # present at 0 from the start, as rate() wants

    def register(self, collector: Collector) -> None:
        self.registry.register(collector)

    def extraction_matched(self, count: int = 1) -> None:
        """Count `count` extractor matches (the extractors call this once per batch of lines)."""
        self.extraction_matches.inc(count)

    def observe(self, events: Iterable[Event]) -> None:
        """Count the starts and ends among lifecycle events (the trace's Lifecycle hands them)."""
        for ev in events:
            if ev.type is EventType.STATUS and ev.data.get("status") == "running":
                self.jobs_started.inc()
            elif ev.type is EventType.COMPLETE:
                d = ev.data
                self.jobs_finished.labels(str(d.get("status"))).inc()
                if isinstance(d.get("duration"), int | float):
                    self.job_duration.observe(d["duration"])
