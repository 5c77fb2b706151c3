"""PTY jobs: a real terminal, input echo, ^D, resize, signals through the terminal's group."""

from __future__ import annotations

import re

import pytest

from jobcast.errors import JobFinished
from jobcast.models import EventType, JobStatus
from tests.runner.support import (
    events,
    of_type,
    run,
    submit,
    wait_final,
    wait_output,
    wait_status,
)


async def test_the_job_runs_on_a_terminal(store, supervisor):
    script = "tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; echo $TERM"
    job, evs = await run(store, supervisor, command=script, pty=True, cols=100, rows=30)
    assert job.status is JobStatus.SUCCEEDED
    out = await store.read_output(job.id, "all")
    assert re.match(rb"/dev/pts/\d+\r\n30 100\r\nall-ttys\r\n", out), out
    assert of_type(evs, EventType.COMMAND)[0].data["pty"] is True
    assert await store.read_output(job.id, "stderr") == b""


async def test_the_terminal_is_the_controlling_one(store, supervisor):
    # Only a session's controlling terminal can be opened as /dev/tty.
    job, _ = await run(store, supervisor, command="echo via-tty > /dev/tty", pty=True)
    assert job.status is JobStatus.SUCCEEDED
    assert await store.read_output(job.id, "stdout") == b"via-tty\r\n"


async def test_input_echoes_and_eof_ends_cat(store, supervisor):
    job = await submit(store, supervisor, argv=["cat"], pty=True)
    await wait_status(store, job.id, JobStatus.RUNNING)
    assert await supervisor.write_input(job.id, b"hello\n") == 6
    # Once from the terminal's echo, once from cat.
    await wait_output(store, job.id, b"hello\r\nhello\r\n")
    await supervisor.write_input(job.id, b"", eof=True)
    job = await wait_final(store, job.id)
    assert job.status is JobStatus.SUCCEEDED
    inputs = [e.data for e in of_type(await events(store, job.id), EventType.INPUT)]
    assert inputs == [{"length": 6}, {"length": 0, "eof": True}]


async def test_resize_changes_stty_size(store, supervisor):
    script = "stty size; read line; stty size"
    job = await submit(store, supervisor, command=script, pty=True, cols=80, rows=24)
    await wait_output(store, job.id, b"24 80\r\n")
    await supervisor.resize(job.id, 120, 40)
    await supervisor.write_input(job.id, b"\n")
    await wait_output(store, job.id, b"40 120\r\n")
    job = await wait_final(store, job.id)
    assert job.status is JobStatus.SUCCEEDED
    resizes = [e.data for e in of_type(await events(store, job.id), EventType.RESIZE)]
    assert resizes == [{"cols": 120, "rows": 40}]


async def test_a_queued_terminal_job_starts_with_its_new_size(store, make_supervisor):
    sup = await make_supervisor(max_running_jobs=1)
    blocker = await submit(store, sup, argv=["sleep", "300"])
    job = await submit(store, sup, command="stty size", pty=True)
    await sup.resize(job.id, 132, 50)
    await sup.cancel(blocker.id)
    job = await wait_final(store, job.id)
    assert await store.read_output(job.id, "stdout") == b"50 132\r\n"


async def test_resize_sends_sigwinch(store, supervisor):
    script = "trap 'echo winch' WINCH; echo ready; while :; do sleep 0.05; done"
    job = await submit(store, supervisor, command=script, pty=True)
    await wait_output(store, job.id, b"ready")
    await supervisor.resize(job.id, 90, 30)
    await wait_output(store, job.id, b"winch")
    await supervisor.cancel(job.id)


async def test_interrupt_through_signal(store, supervisor):
    job = await submit(store, supervisor, argv=["sleep", "300"], pty=True)
    await wait_status(store, job.id, JobStatus.RUNNING)
    assert await supervisor.signal(job.id, "SIGINT") == "SIGINT"
    job = await wait_final(store, job.id)
    assert (job.status, job.signal) == (JobStatus.FAILED, "SIGINT")


async def test_cancel_a_terminal_job(store, supervisor):
    job = await submit(store, supervisor, command="sleep 300 & sleep 300", pty=True)
    await wait_status(store, job.id, JobStatus.RUNNING)
    await supervisor.cancel(job.id)
    job = await store.get_job(job.id)
    assert job.status is JobStatus.CANCELLED


async def test_resize_out_of_range_or_finished(store, supervisor):
    job, _ = await run(store, supervisor, command="true", pty=True)
    with pytest.raises(JobFinished):
        await supervisor.resize(job.id, 100, 40)
    with pytest.raises(ValueError, match="between 1 and 1000"):
        await supervisor.resize(job.id, 0, 40)


RAISED_INTR = """
import signal, sys, termios
attrs = termios.tcgetattr(0)
attrs[6][termios.VINTR] = b'\\x07'  # `stty intr ^G`
termios.tcsetattr(0, termios.TCSANOW, attrs)
signal.signal(signal.SIGINT, lambda *a: print('sigint', flush=True))
print('ready', flush=True)
print('read', repr(sys.stdin.readline()), flush=True)
"""


async def test_interrupt_sends_the_terminals_own_interrupt_character(store, supervisor):
    job = await submit(store, supervisor, argv=["python3", "-c", RAISED_INTR], pty=True)
    await wait_output(store, job.id, b"ready\r\n")
    # The program made ^G its interrupt key: ^C would only be a character on its line.
    assert await supervisor.interrupt(job.id) == "VINTR"
    await wait_output(store, job.id, b"sigint\r\n")
    await supervisor.write_input(job.id, b"rest\n")
    await wait_output(store, job.id, b"read 'rest\\n'")
    job = await wait_final(store, job.id)
    assert job.status is JobStatus.SUCCEEDED
    inputs = [e.data for e in of_type(await events(store, job.id), EventType.INPUT)]
    assert inputs[0] == {"length": 1, "interrupt": True}


async def test_interrupt_without_a_terminal_is_sigint_to_the_group(store, supervisor):
    job = await submit(store, supervisor, command="sleep 300; echo not-reached")
    await wait_status(store, job.id, JobStatus.RUNNING)
    assert await supervisor.interrupt(job.id) == "SIGINT"
    job = await wait_final(store, job.id)
    assert job.status is JobStatus.FAILED
    assert await store.read_output(job.id, "all") == b""


async def test_output_written_just_before_exit_is_all_there(store, supervisor):
    # The last bytes are in the terminal when the program exits; the master then reads EIO.
    script = "import os; os.write(1, b'x' * 1_000_000 + b'END'); os._exit(0)"
    for _ in range(3):
        job, _ = await run(store, supervisor, argv=["python3", "-c", script], pty=True)
        out = await store.read_output(job.id, "stdout")
        assert len(out) == 1_000_003 and out.endswith(b"xEND")


async def test_term_is_set_unless_the_job_sets_it(store, supervisor):
    job, _ = await run(store, supervisor, command="echo $TERM", pty=True)
    assert await store.read_output(job.id, "stdout") == b"xterm-256color\r\n"
    job, _ = await run(store, supervisor, command="echo $TERM", pty=True, env={"TERM": "vt100"})
    assert await store.read_output(job.id, "stdout") == b"vt100\r\n"


async def test_the_job_shows_its_last_window_size(store, supervisor):
    job = await submit(store, supervisor, argv=["sleep", "300"], pty=True, cols=81, rows=25)
    assert ((await store.get_job(job.id)).cols, job.rows) == (81, 25)
    await wait_status(store, job.id, JobStatus.RUNNING)
    await supervisor.resize(job.id, 132, 43)
    job = await store.get_job(job.id)
    assert (job.cols, job.rows) == (132, 43)
    await supervisor.cancel(job.id)
    plain = await submit(store, supervisor, argv=["true"])
    assert (plain.cols, plain.rows) == (None, None)
