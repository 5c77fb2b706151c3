"""Metrics: the instruments of one server, in a registry of its own."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobcast.metrics import Metrics
from jobcast.models import Event, EventType


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(m.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _event(seq: int, type: EventType, **data: object) -> Event:
    return Event(seq, "j1", type, 0.0, dict(data), None, seq)


def test_lifecycle_events_move_the_counters_and_the_durations() -> None:
    m = Metrics()
    m.observe(
        [
            _event(1, EventType.STATUS, status="queued"),
            _event(2, EventType.STATUS, status="running"),
            _event(3, EventType.STATUS, status="failed"),
            _event(4, EventType.COMPLETE, status="failed", duration=2.5, dropped_bytes=300),
            # cancelled while queued: no duration
            _event(5, EventType.COMPLETE, status="cancelled", duration=None, dropped_bytes=0),
        ]
    )
    m.extraction_matched()
    m.extraction_matched(4)
    s = _samples(m)
    assert s[("jobcast_jobs_started_total", ())] == 1
    assert s[("jobcast_jobs_finished_total", (("status", "failed"),))] == 1
    assert s[("jobcast_jobs_finished_total", (("status", "cancelled"),))] == 1
    assert s[("jobcast_jobs_finished_total", (("status", "succeeded"),))] == 0
    assert s[("jobcast_job_duration_seconds_count", ())] == 1
    assert s[("jobcast_job_duration_seconds_sum", ())] == 2.5
    assert s[("jobcast_extraction_matches_total", ())] == 5


def test_two_servers_in_one_process_keep_their_own_figures() -> None:
    a, b = Metrics(), Metrics()
    a.extraction_matched(2)
    assert _samples(a)[("jobcast_extraction_matches_total", ())] == 2
    assert _samples(b)[("jobcast_extraction_matches_total", ())] == 0
