"""Jobs, specs and the status lifecycle."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobcast.models import (
    FINAL_STATUSES,
    TRANSITIONS,
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


def test_job_ids_are_short_unique_and_sort_by_creation():
    ids = [new_job_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and ids == sorted(ids)
    assert all(len(i) == 14 and i.isalnum() and i.islower() for i in ids)
