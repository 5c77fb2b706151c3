"""Jobs, specs and the status lifecycle."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobcast.models import (
    FINAL_STATUSES,
    RECORDED_INPUT,
    TRANSITIONS,
    Event,
    EventType,
    JobSpec,
    JobStatus,
    can_transition,
    new_job_id,
)


def test_final_statuses_never_change():
    for status in FINAL_STATUSES:
        assert status.is_final and TRANSITIONS[status] == frozenset()
    assert can_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    assert not can_transition(JobStatus.RUNNING, JobStatus.QUEUED)
    assert not JobStatus.RUNNING.is_final


def test_spec_needs_exactly_one_command():
    assert JobSpec(command="echo hi").resolved_argv() == ["/bin/sh", "-c", "echo hi"]
    assert JobSpec(argv=["ls", "-l"]).resolved_argv() == ["ls", "-l"]
    for bad in (
        {},
        {"command": "x", "argv": ["y"]},
        {"command": "  "},
        {"argv": []},
        {"command": "x", "name": "has space"},
        {"command": "x", "extra": 1},
    ):
        with pytest.raises(ValidationError):
            JobSpec.model_validate(bad)


def test_recorded_input_counts_in_an_events_size():
    plain = Event(1, "j1", EventType.INPUT, 1.0, {"length": 4000})
    kept = Event(2, "j1", EventType.INPUT, 1.0, {"length": 3, RECORDED_INPUT: "x" * 4000})
    assert plain.size == 64 and kept.size == 64 + 4000


def test_job_ids_are_short_unique_and_sort_by_creation():
    ids = [new_job_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and ids == sorted(ids)
    assert all(len(i) == 14 and i.isalnum() and i.islower() for i in ids)


def test_a_jobs_webhook_is_a_url_or_url_and_secret():
    short = JobSpec.model_validate({"argv": ["true"], "webhook": "https://ci.example/h"})
    assert short.webhook is not None and short.webhook.url == "https://ci.example/h"
    assert short.webhook.secret is None
    full = JobSpec.model_validate(
        {"argv": ["true"], "webhook": {"url": "http://127.0.0.1:9/h", "secret": "s"}}
    )
    assert full.webhook is not None and full.webhook.secret == "s"
    for bad, why in [
        ("ftp://ci.example/h", "http:// or https://"),
        ("https://u:p@ci.example/h", "user or password"),
        ("https:///nohost", "with a host"),
        ({"url": "https://a.b/h", "secret": ""}, "at least 1 character"),
        ({"url": "https://a.b/h", "extra": 1}, "Extra inputs"),
        (3, "webhook"),
    ]:
        with pytest.raises(ValidationError, match=why):
            JobSpec.model_validate({"argv": ["true"], "webhook": bad})
