"""GET /metrics: the Prometheus text format, from the app's own registry.

The figures the server keeps anyway (clients by transport, events and bytes sent, stalled
disconnects, running and queued jobs, output appended and dropped) are read by `_Live` at scrape time; the
ones that need the store (jobs by status, its size on disk) are fetched, off the loop, by the
handler just before, so the collector itself never waits.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..models import JobStatus
from ..store.base import DiskUsage
from ..store.writer import Writer
from .state import STATE, State

__all__ = ["install", "routes"]

routes = web.RouteTableDef()

#: what generate_latest writes, under the name every Prometheus version takes (newer clients
#: call it 1.0.0, which older servers do not know)
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: how old the store's size on disk may be when scraped
_DISK_SECONDS = 5.0

#: the transports a Follower's `kind` names, each always reported (0 when none is connected)
_TRANSPORTS = ("sse", "ws", "log", "stream", "mux")


class _Live(Collector):
    """What the server counts already, read at each scrape; `jobs` and `disk` are what the
    handler fetched from the store just before."""

    def __init__(self, state: State) -> None:
        self._state = state
        self.jobs: dict[str, int] = {}
        self.disk: DiskUsage | None = None
        self.disk_at = -_DISK_SECONDS

    def collect(self) -> Iterator[Metric]:
        state, stats = self._state, self._state.stats
        by_status = GaugeMetricFamily(
            "jobcast_jobs", "Jobs in the store, by status", labels=["status"]
        )
        for status in JobStatus:
            by_status.add_metric([status.value], self.jobs.get(status.value, 0))
        yield by_status
        yield GaugeMetricFamily(
            "jobcast_jobs_running", "Jobs running now", value=state.supervisor.running()
        )
        yield GaugeMetricFamily(
            "jobcast_jobs_queued",
            "Jobs waiting for a slot (max_running_jobs)",
            value=state.supervisor.queued() + state.admitting,
        )
        kinds = Counter(f.kind for f in stats.followers)
        clients = GaugeMetricFamily(
            "jobcast_clients", "Streaming clients connected now, by transport", labels=["transport"]
        )
        for kind in _TRANSPORTS:
            clients.add_metric([kind], kinds.get(kind, 0))
        yield clients
        yield CounterMetricFamily(
            "jobcast_events_sent", "Events written to streaming clients", value=stats.events_sent
        )
        yield CounterMetricFamily(
            "jobcast_sent_bytes", "Bytes written to streaming clients", value=stats.bytes_sent
        )
        yield CounterMetricFamily(
            "jobcast_stalled_disconnects",
            "Clients disconnected for reading nothing for stall_timeout_seconds",
            value=stats.stalled_disconnects,
        )
        yield CounterMetricFamily(
            "jobcast_output_bytes",
            "Output bytes (stdout and stderr) captured into the event log",
            value=state.store.output_bytes_appended,
        )
        yield CounterMetricFamily(
            "jobcast_output_dropped_bytes",
            "Output bytes not kept (past max_output_bytes, or refused by the store), running "
            "jobs' included",
            value=state.supervisor.dropped_bytes(),
        )
        if self.disk is not None:
            size = GaugeMetricFamily(
                "jobcast_store_bytes", "What the store takes on disk, by part", labels=["part"]
            )
            size.add_metric(["db"], self.disk["db_bytes"])
            size.add_metric(["wal"], self.disk["wal_bytes"])
            size.add_metric(["output"], self.disk["output_bytes"])
            yield size


_LIVE = web.AppKey("jobcast_metrics_live", _Live)


def install(app: web.Application, state: State) -> None:
    """Wire the app's instruments to what they observe, and register the scrape-time collectors."""
    metrics = state.metrics
    live = _Live(state)
    metrics.register(live)
    # /proc/self: CPU, memory, open files; read at scrape, nothing in between
    ProcessCollector(registry=metrics.registry)
    state.stats.loop_lag.observe = metrics.loop_lag.observe
    writer = getattr(state.store, "writer", None)
    if isinstance(writer, Writer):  # a backend without a writer thread has no batch to time
        writer.observe_latency = metrics.append_latency.observe
    app[_LIVE] = live


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    live = request.app[_LIVE]
    # Off the loop (reader threads); the collectors then only read numbers in memory.
    live.jobs = await state.store.count_jobs()
    if time.monotonic() - live.disk_at >= _DISK_SECONDS:
        # A walk of the output files: at most every few seconds, however often one scrapes.
        live.disk, live.disk_at = await state.store.disk_usage(), time.monotonic()
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": _CONTENT_TYPE})
