"""Helpers for the runner's tests: submit jobs, wait on them and on processes, with deadlines."""

from __future__ import annotations

import os
from typing import Any

from jobcast.models import Event, EventType, Job, JobSpec, JobStatus
from jobcast.runner import Supervisor
from tests.helpers import async_wait_for


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped by init) counts as gone."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


async def submit(store: Any, sup: Supervisor, **spec: Any) -> Job:
    job_spec = JobSpec(**spec)
    job: Job = await store.create_job(job_spec)
    await sup.submit(job, job_spec)
    return job


async def wait_final(store: Any, job_id: str, within: float = 30.0) -> Job:
    async def final() -> Job | None:
        job: Job = await store.get_job(job_id)
        return job if job.status.is_final else None

    job = await async_wait_for(final, within)
    assert job is not None
    return job


async def wait_output(
    store: Any, job_id: str, want: bytes, stream: str = "all", within: float = 10.0
) -> bytes:
    async def seen() -> bytes | None:
        out: bytes = await store.read_output(job_id, stream)
        return out if want in out else None

    out = await async_wait_for(seen, within)
    assert out is not None
    return out


async def events(store: Any, job_id: str) -> list[Event]:
    """The job's whole event log, read page by page."""
    out: list[Event] = []
    while page := await store.read(job_id, out[-1].seq if out else 0, max_bytes=1 << 30):
        out += page
    return out


async def run(store: Any, sup: Supervisor, **spec: Any) -> tuple[Job, list[Event]]:
    """Submit a job, wait for its end; return it with its whole event log."""
    job = await submit(store, sup, **spec)
    job = await wait_final(store, job.id)

    # The store's row can show the final status a moment before the loop has taken the commit
    # that shows its `complete` event: wait for that too.
    async def ended() -> list[Event] | None:
        log = await events(store, job.id)
        return log if log and log[-1].type is EventType.COMPLETE else None

    return job, await async_wait_for(ended)


def of_type(evs: list[Event], type: EventType) -> list[Event]:
    return [e for e in evs if e.type is type]


async def wait_gone(pids: list[int], within: float = 10.0) -> None:
    async def gone() -> bool:
        return not any(process_alive(p) for p in pids)

    await async_wait_for(gone, within)


async def wait_status(store: Any, job_id: str, status: JobStatus, within: float = 10.0) -> None:
    async def reached() -> bool:
        job: Job = await store.get_job(job_id)
        return job.status is status

    await async_wait_for(reached, within)


def _stat(pid: int | str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields is not None else None


def session_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[3]) if fields is not None else None


def with_job_id(job_id: str) -> list[int]:
    """Every live process on the machine whose environment says it belongs to the job."""
    marker = f"JOBCAST_JOB_ID={job_id}".encode()
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker in env and process_alive(pid):
            found.append(pid)
    return found


def zombies_of(ppid: int) -> list[int]:
    """The zombies whose parent is `ppid`: exited, never reaped."""
    zombies = []
    for pid in _pids():
        fields = _stat(pid)
        if fields is not None and fields[0] == b"Z" and int(fields[1]) == ppid:
            zombies.append(pid)
    return zombies


def reaped(pid: int) -> bool:
    """The process is gone, and not even a zombie is left of it."""
    return not os.path.exists(f"/proc/{pid}")
