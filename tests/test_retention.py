"""Retention: exactly the oldest finished jobs go, by age, count and bytes; never an unfinished one."""

from __future__ import annotations

import logging

import pytest

from jobcast.config import load_settings
from jobcast.errors import JobNotFound
from jobcast.models import EventType, JobSpec, JobStatus
from jobcast.retention import DAY, Policy, prune, select
from jobcast.store.base import FinishedJob
from jobcast.store.sqlite import SQLiteStore

NOW = 100 * DAY


def _jobs(*spec: tuple[float, int]) -> list[FinishedJob]:
    """Finished jobs, (days ago, output bytes) each, given oldest first."""
    return [
        FinishedJob(f"j{i}", None, NOW - days * DAY, size) for i, (days, size) in enumerate(spec)
    ]


def _chosen(jobs: list[FinishedJob], **policy: float) -> list[str]:
    return [job.id for job, _ in select(jobs, Policy(**policy), NOW)]  # type: ignore[arg-type]


def test_by_age():
    jobs = _jobs((10, 1), (8, 1), (7.5, 1), (6, 1), (0, 1))
    assert _chosen(jobs, older_than=7 * DAY) == ["j0", "j1", "j2"]
    assert _chosen(jobs, older_than=0) == ["j0", "j1", "j2", "j3", "j4"]
    assert _chosen(jobs, older_than=11 * DAY) == []


def test_by_count_keeps_the_newest():
    jobs = _jobs((5, 1), (4, 1), (3, 1), (2, 1))
    assert _chosen(jobs, max_jobs=3) == ["j0"]
    assert _chosen(jobs, max_jobs=0) == ["j0", "j1", "j2", "j3"]
    assert _chosen(jobs, max_jobs=4) == []


def test_by_bytes_keeps_the_newest_that_fit():
    jobs = _jobs((5, 400), (4, 300), (3, 200), (2, 100))
    assert _chosen(jobs, max_bytes=300) == ["j0", "j1"]  # 200 + 100 left
    assert _chosen(jobs, max_bytes=1000) == []
    assert _chosen(jobs, max_bytes=99) == ["j0", "j1", "j2", "j3"]


def test_any_rule_suffices_and_each_says_why():
    jobs = _jobs((9, 10), (5, 1000), (4, 10), (3, 10))
    chosen = select(jobs, Policy(older_than=7 * DAY, max_jobs=3, max_bytes=50), NOW)
    assert [(j.id, why.split()[0]) for j, why in chosen] == [("j0", "ended"), ("j1", "finished")]
    assert "9.0 days" in chosen[0][1]
    assert select(jobs, Policy(), NOW) == []


def test_policy_from_settings():
    s = load_settings(retention_days=7, retention_max_jobs=100, retention_max_bytes=10**9)
    assert Policy.from_settings(s) == Policy(7 * DAY, 100, 10**9)
    assert not Policy.from_settings(load_settings()).active


async def _job(store, status: JobStatus, finished_at: float | None = None, output: bytes = b""):
    job = await store.create_job(JobSpec(argv=["true"]))
    if status is JobStatus.QUEUED:
        return job
    await store.set_status(job.id, JobStatus.RUNNING, started_at=1.0)
    if output:
        await store.append(job.id, EventType.STDOUT, raw=output)
    if status is not JobStatus.RUNNING:
        await store.set_status(job.id, status, finished_at=finished_at, exit_code=1)
    return job


async def test_prune_deletes_the_chosen_jobs_and_their_files_and_logs_each(store, caplog):
    old = [await _job(store, JobStatus.FAILED, NOW - (9 - i) * DAY, b"x" * 10) for i in range(3)]
    new = await _job(store, JobStatus.SUCCEEDED, NOW - DAY, b"new")
    # started long ago, still going: neither deleted nor counted
    running = await _job(store, JobStatus.RUNNING, output=b"live")
    queued = await _job(store, JobStatus.QUEUED)
    caplog.set_level(logging.INFO, logger="jobcast.retention")
    done = await prune(store, Policy(older_than=7 * DAY, max_jobs=2), now=NOW)
    assert done.deleted == [old[0].id, old[1].id, old[2].id]
    assert done.bytes == 30
    for job in old:
        with pytest.raises(JobNotFound):
            await store.get_job(job.id)
        if isinstance(store, SQLiteStore):  # its output files go with it
            assert not list(store.files.root.glob(f"{job.id}.*"))
        lines = [r for r in caplog.records if job.id in r.getMessage()]
        assert len(lines) == 1 and "retention deleted job" in lines[0].getMessage()
    assert (await store.get_job(new.id)).status is JobStatus.SUCCEEDED
    assert (await store.get_job(running.id)).status is JobStatus.RUNNING
    assert (await store.get_job(queued.id)).status is JobStatus.QUEUED
    assert await store.read_output(running.id, "stdout") == b"live"
    # max_jobs=0 would take every finished one; the unfinished stay whatever the rules
    assert (await prune(store, Policy(max_jobs=0, max_bytes=0), now=NOW)).deleted == [new.id]
    assert {j.id for j in (await store.list_jobs()).jobs} == {running.id, queued.id}


async def test_a_dry_run_deletes_nothing(store):
    job = await _job(store, JobStatus.SUCCEEDED, NOW - 10 * DAY, b"abc")
    done = await prune(store, Policy(older_than=DAY), now=NOW, dry_run=True)
    assert (done.deleted, done.bytes) == ([job.id], 3)
    assert (await store.get_job(job.id)).id == job.id
