"""The supervisor with real processes and the real store: lifecycle, limits, control, recovery."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from jobcast.errors import BadRequest, Conflict, JobFinished, NoStdin, ServerShuttingDown
from jobcast.models import Event, EventType, JobSpec, JobStatus
from jobcast.runner.group import read_starttime
from tests.helpers import async_wait_for
from tests.runner.support import (
    events,
    of_type,
    process_alive,
    run,
    submit,
    wait_final,
    wait_gone,
    wait_output,
    wait_status,
)


def statuses(evs: list[Event]) -> list[str]:
    return [e.data["status"] for e in of_type(evs, EventType.STATUS)]


async def test_success_and_the_order_of_events(store, supervisor):
    job, evs = await run(store, supervisor, command="echo hello")
    assert (job.status, job.exit_code, job.signal) == (JobStatus.SUCCEEDED, 0, None)
    assert job.pid is not None and job.started_at is not None and job.finished_at is not None
    types = [e.type for e in evs]
    assert types == [
        EventType.STATUS,
        EventType.STATUS,
        EventType.COMMAND,
        EventType.STDOUT,
        EventType.STATUS,
        EventType.COMPLETE,
    ]
    assert statuses(evs) == ["queued", "running", "succeeded"]
    argv = ["/bin/sh", "-c", "echo hello"]
    assert evs[2].data == {"argv": argv, "cwd": os.getcwd(), "pty": False}
    assert evs[-1].data["status"] == "succeeded" and evs[-1].data["stdout_bytes"] == 6


async def test_exit_code_fails_the_job(store, supervisor):
    job, evs = await run(store, supervisor, argv=["sh", "-c", "exit 3"])
    assert (job.status, job.exit_code, job.signal) == (JobStatus.FAILED, 3, None)
    assert job.reason == "exited with code 3"
    assert evs[-1].type is EventType.COMPLETE and evs[-1].data["exit_code"] == 3


async def test_a_signal_nobody_sent_fails_the_job(store, supervisor):
    job, evs = await run(store, supervisor, command="kill -KILL $$")
    assert (job.status, job.exit_code, job.signal) == (JobStatus.FAILED, None, "SIGKILL")
    assert evs[-1].data["signal"] == "SIGKILL"


async def test_stdout_and_stderr_stay_separate(store, supervisor):
    script = "for i in $(seq 1 3000); do echo out$i; echo err$i >&2; done"
    job, _ = await run(store, supervisor, command=script)
    assert job.status is JobStatus.SUCCEEDED
    out = await store.read_output(job.id, "stdout")
    err = await store.read_output(job.id, "stderr")
    assert out == b"".join(b"out%d\n" % i for i in range(1, 3001))
    assert err == b"".join(b"err%d\n" % i for i in range(1, 3001))


async def test_ten_megabytes_of_binary_round_trip(store, supervisor, tmp_path):
    blob = os.urandom(10 * 1024 * 1024)
    (tmp_path / "blob").write_bytes(blob)
    job, evs = await run(store, supervisor, argv=["cat", str(tmp_path / "blob")])
    assert job.status is JobStatus.SUCCEEDED
    assert await store.read_output(job.id, "stdout") == blob
    # Batched at the source: megabytes per event, not pipe-sized dribbles.
    assert len(of_type(evs, EventType.STDOUT)) < 200


async def test_a_chunk_without_newline_is_visible_while_the_job_runs(store, supervisor):
    job = await submit(store, supervisor, command="printf abc; sleep 30")
    start = time.monotonic()
    assert await wait_output(store, job.id, b"abc") == b"abc"
    assert time.monotonic() - start < 2
    assert (await store.get_job(job.id)).status is JobStatus.RUNNING
    await supervisor.cancel(job.id)


async def test_cancel_ends_the_whole_group(store, supervisor):
    job = await submit(store, supervisor, command="sleep 300 & echo $!; sleep 300 & echo $!; wait")

    async def two_pids() -> list[int]:
        pids = (await store.read_output(job.id, "stdout")).split()
        return [int(p) for p in pids] if len(pids) == 2 else []

    pids = await async_wait_for(two_pids, 5)
    assert all(process_alive(p) for p in pids)
    await supervisor.cancel(job.id)
    job = await store.get_job(job.id)
    assert (job.status, job.signal, job.reason) == (
        JobStatus.CANCELLED,
        "SIGTERM",
        "cancelled by request",
    )
    assert job.pid is not None
    await wait_gone([job.pid, *pids])
    with pytest.raises(JobFinished):
        await supervisor.cancel(job.id)


async def test_cancel_is_idempotent_while_the_job_ends(store, make_supervisor):
    sup = await make_supervisor(kill_grace_seconds=0.5)
    job = await submit(store, sup, command="trap '' TERM; sleep 300 & wait")
    await wait_status(store, job.id, JobStatus.RUNNING)
    await asyncio.gather(sup.cancel(job.id), sup.cancel(job.id, "again"))
    job = await store.get_job(job.id)
    assert (job.status, job.reason) == (JobStatus.CANCELLED, "cancelled by request")


async def test_a_process_ignoring_sigterm_is_killed_after_the_grace(store, make_supervisor):
    sup = await make_supervisor(kill_grace_seconds=0.5)
    job = await submit(store, sup, command="trap '' TERM; echo ready; sleep 300 & wait")
    await wait_output(store, job.id, b"ready")
    start = time.monotonic()
    await sup.cancel(job.id)
    assert time.monotonic() - start >= 0.5
    job = await store.get_job(job.id)
    assert (job.status, job.signal) == (JobStatus.CANCELLED, "SIGKILL")


async def test_timeout(store, supervisor):
    job, evs = await run(store, supervisor, command="sleep 300", timeout=0.3)
    assert (job.status, job.signal) == (JobStatus.TIMED_OUT, "SIGTERM")
    assert job.reason == "ran past its timeout of 0.3s"
    assert evs[-1].type is EventType.COMPLETE and evs[-1].data["status"] == "timed_out"


async def test_output_cap_keeps_exactly_n_bytes_and_the_job_goes_on(store, make_supervisor):
    sup = await make_supervisor(max_output_bytes=1000)
    script = "head -c 5000 /dev/zero; sleep 0.1; head -c 3000 /dev/zero >&2; echo done"
    job, evs = await run(store, sup, command=script)
    assert job.status is JobStatus.SUCCEEDED
    assert job.dropped_bytes == 8005 - 1000
    assert await store.read_output(job.id, "all") == b"\0" * 1000
    errors = of_type(evs, EventType.ERROR)
    assert len(errors) == 1 and errors[0].data["code"] == "output_limit"
    assert "output limit of 1000 bytes reached" in errors[0].data["message"]
    assert evs[-1].data["dropped_bytes"] == 7005


async def test_a_failed_store_write_is_an_error_event_and_a_log_line(
    store, supervisor, monkeypatch, caplog
):
    job = await submit(store, supervisor, argv=["cat"], stdin=True)
    await wait_status(store, job.id, JobStatus.RUNNING)
    append = store.append

    async def disk_full(job_id: str, type: EventType, *args: Any, **kwargs: Any) -> Event:
        # The store refuses output as a full disk makes it (each backend's own failure of a
        # write is tested with the store); everything else it takes.
        if type is EventType.STDOUT:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return await append(job_id, type, *args, **kwargs)

    monkeypatch.setattr(store, "append", disk_full)
    await supervisor.write_input(job.id, b"lost\n")

    async def errors() -> list[Event]:
        return of_type(await events(store, job.id), EventType.ERROR)

    [error] = await async_wait_for(errors, 10)
    assert error.data["code"] == "store_failed"
    assert "5 bytes of stdout" in error.data["message"]
    assert "No space left on device" in error.data["message"]
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert job.id in line.getMessage() and "No space left on device" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback

    # The job went on; once the store takes writes again, so does its output.
    monkeypatch.setattr(store, "append", append)
    await supervisor.write_input(job.id, b"kept\n", eof=True)
    job = await wait_final(store, job.id)
    assert (job.status, job.dropped_bytes) == (JobStatus.SUCCEEDED, 5)
    assert await store.read_output(job.id, "stdout") == b"kept\n"
    assert len(await errors()) == 1


async def test_stdin_is_echoed_back(store, supervisor):
    job = await submit(store, supervisor, argv=["cat"], stdin=True)
    await wait_status(store, job.id, JobStatus.RUNNING)
    assert await supervisor.write_input(job.id, b"hello ") == 6
    assert await supervisor.write_input(job.id, b"world\n", eof=True) == 6
    job = await wait_final(store, job.id)
    assert job.status is JobStatus.SUCCEEDED
    assert await store.read_output(job.id, "stdout") == b"hello world\n"
    inputs = [e.data for e in of_type(await events(store, job.id), EventType.INPUT)]
    assert inputs == [{"length": 6}, {"length": 6, "eof": True}]


async def test_no_stdin(store, supervisor):
    job = await submit(store, supervisor, command="sleep 300")
    with pytest.raises(NoStdin, match="started without stdin; start it with stdin=true"):
        await supervisor.write_input(job.id, b"x")
    await supervisor.cancel(job.id)
    with pytest.raises(JobFinished):
        await supervisor.write_input(job.id, b"x")


async def test_max_running_jobs_queues_fifo(store, make_supervisor):
    sup = await make_supervisor(max_running_jobs=1)
    first = await submit(store, sup, argv=["cat"], stdin=True)
    second = await submit(store, sup, command="echo second")
    third = await submit(store, sup, command="echo third")
    await wait_status(store, first.id, JobStatus.RUNNING)
    assert (sup.running(), sup.queued()) == (1, 2)
    assert (await store.get_job(second.id)).status is JobStatus.QUEUED
    with pytest.raises(Conflict, match="is queued"):
        await sup.signal(second.id, "INT")
    await sup.write_input(first.id, b"", eof=True)
    jobs = [await wait_final(store, j.id) for j in (first, second, third)]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 3
    assert jobs[0].finished_at is not None
    assert jobs[1].started_at is not None and jobs[2].started_at is not None
    assert jobs[0].finished_at <= jobs[1].started_at <= jobs[2].started_at
    assert (sup.running(), sup.queued()) == (0, 0)


async def test_cancel_a_queued_job(store, make_supervisor):
    sup = await make_supervisor(max_running_jobs=1)
    blocker = await submit(store, sup, command="sleep 300")
    queued = await submit(store, sup, command="echo never")
    await sup.cancel(queued.id, "not needed")
    job = await store.get_job(queued.id)
    assert (job.status, job.reason, job.started_at) == (JobStatus.CANCELLED, "not needed", None)
    evs = await events(store, queued.id)
    assert statuses(evs) == ["queued", "cancelled"] and evs[-1].type is EventType.COMPLETE
    await sup.cancel(blocker.id)


async def test_signal_the_group(store, supervisor):
    job = await submit(store, supervisor, command="sleep 300")
    await wait_status(store, job.id, JobStatus.RUNNING)
    with pytest.raises(BadRequest, match="unknown signal 'NOPE'"):
        await supervisor.signal(job.id, "NOPE")
    assert await supervisor.signal(job.id, "int") == "SIGINT"
    job = await wait_final(store, job.id)
    assert (job.status, job.signal) == (JobStatus.FAILED, "SIGINT")
    with pytest.raises(JobFinished):
        await supervisor.signal(job.id, "TERM")


async def test_resize_needs_a_terminal(store, supervisor):
    job = await submit(store, supervisor, command="sleep 300")
    with pytest.raises(Conflict, match="does not run in a terminal"):
        await supervisor.resize(job.id, 100, 40)
    await supervisor.cancel(job.id)


async def test_a_job_that_cannot_start_says_what_to_fix(store, supervisor, tmp_path):
    job, evs = await run(store, supervisor, argv=["no-such-program-jobcast"])
    assert job.status is JobStatus.FAILED and job.started_at is None
    assert [e.type for e in evs[-3:]] == [EventType.ERROR, EventType.STATUS, EventType.COMPLETE]
    assert "not on PATH; check the spelling" in evs[-3].data["message"]
    assert evs[-1].data["exit_code"] == 127
    job, evs = await run(store, supervisor, command="true", cwd=str(tmp_path / "missing"))
    assert job.status is JobStatus.FAILED
    assert "working directory" in of_type(evs, EventType.ERROR)[0].data["message"]


async def test_env_and_cwd(store, supervisor, tmp_path):
    job, evs = await run(
        store, supervisor, command="pwd; echo $GREETING", cwd=str(tmp_path), env={"GREETING": "hi"}
    )
    assert await store.read_output(job.id, "stdout") == f"{tmp_path}\nhi\n".encode()
    assert of_type(evs, EventType.COMMAND)[0].data["cwd"] == str(tmp_path)


async def test_followers_size_the_batch_window(store, make_supervisor):
    asked: list[str] = []

    def followers(job_id: str) -> int:
        asked.append(job_id)
        return 1000

    sup = await make_supervisor(followers=followers)
    job, _ = await run(store, sup, command="echo a; sleep 0.2; echo b")
    assert job.id in asked
    assert await store.read_output(job.id, "stdout") == b"a\nb\n"


async def test_shutdown_cancels_everything(store, make_supervisor):
    sup = await make_supervisor(max_running_jobs=1)
    running = await submit(store, sup, command="sleep 300")
    queued = await submit(store, sup, command="sleep 300")
    await wait_status(store, running.id, JobStatus.RUNNING)
    pid = (await store.get_job(running.id)).pid
    await sup.shutdown()
    for ref in (running.id, queued.id):
        job = await store.get_job(ref)
        assert (job.status, job.reason) == (JobStatus.CANCELLED, "server shutting down")
    assert not process_alive(pid)
    assert (sup.running(), sup.queued()) == (0, 0)
    with pytest.raises(ServerShuttingDown):
        await submit(store, sup, command="true")


@pytest.fixture
def sleepers():
    """Two `sleep 300` process groups, as a previous server's jobs would have left them."""
    procs = [subprocess.Popen(["sleep", "300"], start_new_session=True) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


async def test_recovery_marks_lost_and_ends_the_left_process_group(
    store, make_supervisor, sleepers
):
    left, stranger = sleepers
    was_running = await store.create_job(JobSpec(command="sleep 300"))
    await store.set_status(was_running.id, JobStatus.RUNNING, started_at=time.time())
    await store.set_process(was_running.id, (left.pid, left.pid, read_starttime(left.pid)))
    # Same pid, another start time: a reused pid, which must never be signalled.
    reused = await store.create_job(JobSpec(command="sleep 300"))
    await store.set_status(reused.id, JobStatus.RUNNING, started_at=time.time())
    stranger_start = read_starttime(stranger.pid)
    assert stranger_start is not None
    fake = (stranger.pid, stranger.pid, stranger_start + 1)
    await store.set_process(reused.id, fake)
    never_started = await store.create_job(JobSpec(command="true"))

    await make_supervisor(kill_grace_seconds=1)
    # A job that was only queued had not started: it runs now.
    await async_wait_for(
        lambda: _status_is(store, never_started.id, JobStatus.SUCCEEDED), within=10
    )

    assert left.poll() == -signal.SIGTERM  # reaped here: it is this test's child
    assert stranger.poll() is None
    for job, reason in [
        (was_running, "the server stopped while the job ran"),
        (reused, "the server stopped while the job ran"),
    ]:
        job = await store.get_job(job.id)
        assert (job.status, job.reason) == (JobStatus.LOST, reason)
        evs = await events(store, job.id)
        assert [e.type for e in evs[-3:]] == [EventType.ERROR, EventType.STATUS, EventType.COMPLETE]
        assert evs[-3].data == {"message": reason, "code": "lost"}


async def test_timeout_of_a_process_ignoring_sigterm(store, make_supervisor):
    sup = await make_supervisor(kill_grace_seconds=0.3)
    job, _ = await run(store, sup, command="trap '' TERM; sleep 300 & wait", timeout=0.2)
    assert (job.status, job.signal) == (JobStatus.TIMED_OUT, "SIGKILL")


async def test_shutdown_kills_what_ignores_sigterm(store, make_supervisor):
    sup = await make_supervisor(kill_grace_seconds=0.3)
    job = await submit(store, sup, command="trap '' TERM; echo ready; sleep 300 & wait")
    await wait_output(store, job.id, b"ready")
    pid = (await store.get_job(job.id)).pid
    await asyncio.wait_for(sup.shutdown("bye"), 10)
    job = await store.get_job(job.id)
    assert (job.status, job.signal, job.reason) == (JobStatus.CANCELLED, "SIGKILL", "bye")
    assert not process_alive(pid)


async def test_complete_stays_last_while_input_races_the_end(store, supervisor):
    job = await submit(store, supervisor, command="read x; echo got $x", stdin=True)
    await wait_status(store, job.id, JobStatus.RUNNING)
    for _ in range(10_000):
        try:
            await supervisor.write_input(job.id, b"line\n")
        except Conflict:  # JobFinished included: the job has ended
            break
        await asyncio.sleep(0.001)
    job = await wait_final(store, job.id)
    assert job.status is JobStatus.SUCCEEDED
    evs = await events(store, job.id)
    assert evs[-1].type is EventType.COMPLETE
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))


async def test_a_failing_follower_count_does_not_stop_the_output(store, make_supervisor):
    def followers(job_id: str) -> int:
        raise RuntimeError("boom")

    sup = await make_supervisor(followers=followers)
    job, _ = await run(store, sup, command="seq 1 20000")
    assert job.status is JobStatus.SUCCEEDED
    expected = b"".join(b"%d\n" % i for i in range(1, 20001))
    assert await store.read_output(job.id, "stdout") == expected


async def _status_is(store, job_id, status):
    return (await store.get_job(job_id)).status is status


def cannot_run(evs: list[Event]) -> list[tuple[str, str]]:
    return [(e.data["code"], e.data["message"]) for e in of_type(evs, EventType.ERROR)]


# The same job as a program (argv) and through the shell (command): reported the same way.
@pytest.mark.parametrize("key", ["argv", "command"])
@pytest.mark.parametrize("options", [{}, {"stderr": "merge"}, {"pty": True}])
async def test_a_missing_program_exits_127_with_command_not_found(store, supervisor, key, options):
    spec = (
        {"argv": ["no-such-program-jobcast"]}
        if key == "argv"
        else {"command": "no-such-program-jobcast -x"}
    )
    job, evs = await run(store, supervisor, **spec, **options)
    assert (job.status, job.exit_code) == (JobStatus.FAILED, 127)
    [(code, message)] = cannot_run(evs)
    assert code == "command_not_found"
    assert message.startswith("command not found: no-such-program-jobcast")
    assert job.reason == message


@pytest.mark.parametrize("key", ["argv", "command"])
@pytest.mark.parametrize("what", ["file", "directory"])
async def test_a_program_that_is_not_executable_exits_126(store, supervisor, tmp_path, key, what):
    path = tmp_path / "script"
    if what == "file":
        path.write_text("#!/bin/sh\necho never\n")
    else:
        path.mkdir()
    spec = {"argv": [str(path)]} if key == "argv" else {"command": str(path)}
    job, evs = await run(store, supervisor, **spec)
    assert (job.status, job.exit_code) == (JobStatus.FAILED, 126)
    [(code, message)] = cannot_run(evs)
    assert code == "command_not_executable"
    assert message.startswith(f"command not executable: {path} (")


async def test_a_shell_job_that_exits_127_itself_is_not_taken_for_a_missing_program(
    store, supervisor
):
    job, evs = await run(store, supervisor, command="echo done >&2; exit 127")
    assert (job.exit_code, cannot_run(evs)) == (127, [])
    # Its last words are its own, not the shell's complaint.
    job, evs = await run(
        store, supervisor, command="no-such-program-jobcast; echo on >&2; exit 127"
    )
    assert (job.exit_code, cannot_run(evs)) == (127, [])


@pytest.fixture
def tmux_shell(tmp_path):
    """A bash in a real tmux session, recorded by `script -f` into streams/SH.typescript."""
    streams = tmp_path / "streams"
    streams.mkdir()
    path = streams / "SH.typescript"
    session = f"jobcast-sup-{os.getpid()}"
    shell = f"script -f -q -c 'bash --norc --noprofile -i' {path}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, shell], check=True)
    yield session, path
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


async def test_a_source_in_tmux_is_interrupted_and_typed_into_through_the_supervisor(
    store, make_supervisor, tmp_path, tmux_shell
):
    from jobcast.config import Settings, SourceConfig
    from jobcast.errors import SourceReadOnly
    from jobcast.sources.tailer import Sources

    session, path = tmux_shell
    streams = path.parent
    settings = Settings(
        data_dir=tmp_path,
        watch=[f"{streams}/*.typescript"],
        sources=[SourceConfig(path=str(path), tmux=session)],
    )
    sup = await make_supervisor()
    sources = Sources(store, settings)
    try:
        await async_wait_for(lambda: _exists(path))
        await sources.start()
        sup.sources = sources
        job = await async_wait_for(lambda: store.find_source(str(path)))
        await sup.write_input(job.id, b"sleep 100; echo slept\r")
        await async_wait_for(lambda: _has(path, b"sleep 100; echo slept\r\n"))
        assert await sup.interrupt_source(job.id) is True
        await sup.write_input(job.id, b"echo back-$((40+2))\r")
        await async_wait_for(lambda: _has(path, b"back-42\r\n"))
        assert path.read_bytes().count(b"slept\r\n") == 1  # ^C reached `sleep`; bash lives
        inputs = of_type(await store.read(job.id, 0), EventType.INPUT)
        assert [e.data for e in inputs] == [{"length": 22}, {"interrupt": True}, {"length": 20}]
        # A job is no source: its caller interrupts the PTY instead.
        plain, _ = await run(store, sup, command="true")
        assert await sup.interrupt_source(plain.id) is False
        # A source without a session in the config is read-only.
        sup.sources = None
        with pytest.raises(SourceReadOnly):
            await sup.interrupt_source(job.id)
    finally:
        await sources.stop()


async def _exists(path) -> bool:
    return path.exists()


async def _has(path, text: bytes) -> bool:
    return text in path.read_bytes()
