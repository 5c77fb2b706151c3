"""Daemons a job leaves behind: adopted by the server as subreaper, ended with the job, reaped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from jobcast.models import JobStatus
from jobcast.runner.reaper import reap_orphans, reap_periodically, set_subreaper
from tests.conftest import ServerProcess
from tests.helpers import async_wait_for, wait_for
from tests.runner.support import (
    parent_of,
    process_alive,
    reaped,
    session_of,
    submit,
    wait_final,
    wait_output,
    with_job_id,
    zombies_of,
)


def double_fork(daemon_lives: float = 300) -> list[str]:
    """Forks twice with setsid() in between, as a daemon does; the daemon prints its pid."""
    script = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print(os.getpid(), flush=True)
        time.sleep({daemon_lives})
    os._exit(0)
time.sleep(300)
"""
    return [sys.executable, "-c", script]


@pytest.fixture
async def subreaper() -> AsyncIterator[None]:
    """This test process as the child subreaper, reaping what it adopts, as the server does."""
    assert set_subreaper()
    task = asyncio.create_task(reap_periodically(0.05))
    yield
    task.cancel()
    reap_orphans()
    set_subreaper(False)


async def started_daemon(store, job_id: str) -> int:
    """The pid the job's daemon printed, once it has been reparented to this process."""
    pid = int(await wait_output(store, job_id, b"\n"))
    await async_wait_for(lambda: asyncio.sleep(0, parent_of(pid) == os.getpid()), 5)
    return pid


async def test_cancel_ends_a_daemon_and_leaves_no_zombie(store, supervisor, subreaper):
    job = await submit(store, supervisor, command="(setsid sleep 300 & echo $!); sleep 300")
    daemon = await started_daemon(store, job.id)
    assert process_alive(daemon)
    assert session_of(daemon) == daemon  # out of the job's session and group: killpg misses it
    await supervisor.cancel(job.id)
    assert (await store.get_job(job.id)).status is JobStatus.CANCELLED
    assert with_job_id(job.id) == []
    assert reaped(daemon)  # not even a zombie of this process


async def test_a_daemon_left_by_a_job_that_exits_is_ended_with_it(store, supervisor, subreaper):
    job = await submit(store, supervisor, command="setsid sleep 300 & echo $!")
    daemon = int(await wait_output(store, job.id, b"\n"))
    job = await wait_final(store, job.id)
    assert (job.status, job.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert reaped(daemon)
    assert with_job_id(job.id) == []


async def test_a_daemon_that_exits_while_the_job_runs_is_reaped(store, supervisor, subreaper):
    job = await submit(store, supervisor, argv=double_fork(0.3))
    daemon = await started_daemon(store, job.id)
    # It exits on its own: a zombie of this process for a moment, then reaped.
    await async_wait_for(lambda: asyncio.sleep(0, reaped(daemon)), 10)
    assert (await store.get_job(job.id)).status is JobStatus.RUNNING
    await supervisor.cancel(job.id)
    assert with_job_id(job.id) == []


async def test_reaping_never_takes_an_exit_status_from_its_owner(store, supervisor, subreaper):
    reaping = True

    async def reap_hard() -> None:
        while reaping:
            reap_orphans()
            await asyncio.sleep(0)

    reaper = asyncio.create_task(reap_hard())
    try:
        # The runner's own job leaders, in sessions of their own, as the orphans are.
        jobs = [await submit(store, supervisor, command="exit 3") for _ in range(5)]
        for job in jobs:
            assert (await wait_final(store, job.id)).exit_code == 3
        # Children of this process in its own session: asyncio's, and a plain Popen.
        child = await asyncio.create_subprocess_exec("sh", "-c", "exit 5")
        assert await child.wait() == 5
        popen = await asyncio.to_thread(subprocess.Popen, ["sh", "-c", "exit 7"])
        await async_wait_for(lambda: asyncio.sleep(0, popen.pid in zombies_of(os.getpid())), 10)
        await asyncio.sleep(0.05)  # many rounds of reap_orphans() while it is a zombie
        assert popen.wait() == 7
    finally:
        reaping = False
        await reaper


def test_the_server_ends_a_double_forked_daemon_on_cancel(server: ServerProcess, api: httpx.Client):
    assert server.proc is not None
    server_pid = server.proc.pid
    job = api.post("/jobs", json={"argv": double_fork()}).json()
    out = wait_for(lambda: api.get(f"/jobs/{job['id']}/log").content.strip(), 10)
    daemon = int(out)
    # The server adopted it (its parent had exited): a subreaper, so the daemon is not init's.
    wait_for(lambda: parent_of(daemon) == server_pid, 5)
    assert api.post(f"/jobs/{job['id']}/cancel").status_code == 200
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "cancelled"
    assert with_job_id(job["id"]) == []
    assert zombies_of(server_pid) == []
