"""Local processes on their own: spawn, batched pumping, input, ending the group, reaping."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import uvloop

from jobcast.errors import Conflict
from jobcast.models import EventType
from jobcast.runner import group
from jobcast.runner.backend import SpawnError, SpawnRequest
from jobcast.runner.group import end_group, group_alive, read_starttime
from jobcast.runner.process import INPUT_LIMIT, MAX_RUNS, LocalProcess, spawn_pipes
from jobcast.runner.procfs import stat_fields
from tests.helpers import async_wait_for
from tests.runner.support import process_alive, wait_gone


class Sink:
    """Collects what a process writes, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[EventType, bytes]] = []

    async def __call__(self, stream: EventType, data: bytes) -> None:
        self.batches.append((stream, data))

    def data(self, stream: EventType = EventType.STDOUT) -> bytes:
        return b"".join(d for s, d in self.batches if s is stream)


def spawn(
    *argv: str, stdin: bool = False, grace: float = 2.0, cwd: str | None = None, merge: bool = False
) -> LocalProcess:
    request = SpawnRequest(
        argv=list(argv),
        cwd=cwd or os.getcwd(),
        env=dict(os.environ),
        stdin=stdin,
        kill_grace=grace,
        merge_stderr=merge,
    )
    return spawn_pipes(request)


def sh(script: str, stdin: bool = False, grace: float = 2.0) -> LocalProcess:
    return spawn("/bin/sh", "-c", script, stdin=stdin, grace=grace)


async def run(proc: LocalProcess, sink: Sink | None = None, window: float = 0.01) -> int:
    return await proc.run(sink or Sink(), lambda: window)


def test_read_starttime():
    assert isinstance(read_starttime(os.getpid()), int)
    assert read_starttime(os.getpid()) == read_starttime(os.getpid())
    assert read_starttime(2**22 + 12345) is None


async def test_identity_is_recorded_at_spawn():
    proc = spawn("true")
    pid, pgid, start = proc.info
    assert pid == pgid  # a new session, so its own process group
    assert start == read_starttime(pid)
    assert await run(proc) == 0


async def test_exit_codes_and_signals():
    assert await run(sh("exit 0")) == 0
    assert await run(sh("exit 3")) == 3
    assert await run(sh("kill -KILL $$")) == -signal.SIGKILL


async def test_stdout_and_stderr_are_separate_and_complete():
    sink = Sink()
    script = "for i in $(seq 1 2000); do echo out$i; echo err$i >&2; done"
    assert await run(sh(script), sink) == 0
    assert sink.data(EventType.STDOUT) == b"".join(b"out%d\n" % i for i in range(1, 2001))
    assert sink.data(EventType.STDERR) == b"".join(b"err%d\n" % i for i in range(1, 2001))


async def test_a_trickle_is_batched_by_the_window():
    # 300 lines, about one a millisecond: one read and one batch per window, not one per line.
    script = "import time\nfor i in range(300):\n    print(i, flush=True)\n    time.sleep(0.001)"
    sink = Sink()
    assert await run(spawn(sys.executable, "-c", script), sink, window=0.05) == 0
    assert sink.data() == b"".join(b"%d\n" % i for i in range(300))
    assert len(sink.batches) < 100


def test_work_queued_by_a_batch_does_not_lengthen_the_window():
    # Each batch queues 60 ms of loop work, as a fan-out to many followers does. The next read
    # is due one window (100 ms) after the last, not 100 ms after that work has finished. On
    # uvloop, as the server runs: its timers count from the start of the loop iteration.
    reads: list[float] = []

    def fan_out() -> None:
        end = time.perf_counter() + 0.06
        while time.perf_counter() < end:
            pass

    async def sink(stream: EventType, data: bytes) -> None:
        reads.append(time.monotonic())
        asyncio.get_running_loop().call_soon(fan_out)

    script = "import time\nfor i in range(400):\n    print(i, flush=True)\n    time.sleep(0.004)"
    proc = spawn(sys.executable, "-c", script)
    assert uvloop.run(proc.run(sink, lambda: 0.1)) == 0
    gaps = sorted(b - a for a, b in zip(reads, reads[1:], strict=False))
    assert len(gaps) >= 8
    assert gaps[len(gaps) // 2] < 0.135  # 0.16 (window + fan-out) before the fix


async def test_a_chunk_without_newline_arrives_while_the_process_runs():
    sink = Sink()
    proc = sh("printf abc; sleep 30")
    task = asyncio.create_task(run(proc, sink))
    start = time.monotonic()

    async def seen() -> bool:
        return sink.data() == b"abc"

    try:
        await async_wait_for(seen, 5)
        assert time.monotonic() - start < 1.0
        assert not proc.exited
    finally:
        proc.signal(signal.SIGKILL)
        assert await task == -signal.SIGKILL


async def test_utf8_characters_are_not_split_across_batches():
    sink = Sink()
    script = r"printf 'a\303'; sleep 0.3; printf '\251b\342\202'; sleep 0.3; printf '\254'"
    assert await run(sh(script), sink) == 0
    assert sink.data() == "aéb€".encode()
    assert len(sink.batches) >= 2
    for _, data in sink.batches:
        data.decode("utf-8")  # each batch ends on a character boundary


async def test_binary_output_is_byte_exact():
    blob = os.urandom(3 << 20)
    code = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
    proc = spawn(sys.executable, "-c", code, stdin=True)
    sink = Sink()
    task = asyncio.create_task(run(proc, sink))
    await proc.write(blob, eof=True)
    assert await task == 0
    assert sink.data() == blob


async def test_input_is_written_without_blocking_and_eof_closes_it():
    sink = Sink()
    proc = spawn("cat", stdin=True)
    task = asyncio.create_task(run(proc, sink))
    assert await proc.write(b"hello\n") == 6
    assert await proc.write(b"world\n", eof=True) == 6
    with pytest.raises(Conflict):
        await proc.write(b"late")
    assert await task == 0
    assert sink.data() == b"hello\nworld\n"


async def test_input_to_a_process_that_does_not_read_is_bounded():
    proc = sh("sleep 30", stdin=True)
    task = asyncio.create_task(run(proc))
    try:
        chunk = b"x" * (64 << 10)
        with pytest.raises(Conflict, match="not reading its input"):
            for _ in range(2 * INPUT_LIMIT // len(chunk) + 64):
                await proc.write(chunk)
        # The event loop stayed free all along.
        await asyncio.wait_for(asyncio.sleep(0), 1)
    finally:
        proc.signal(signal.SIGKILL)
        await task


async def test_no_stdin():
    proc = spawn("true")
    with pytest.raises(Conflict, match="without stdin"):
        await proc.write(b"x")
    assert await run(proc) == 0


async def test_what_the_process_leaves_in_its_group_is_ended():
    sink = Sink()
    proc = sh("sleep 300 & echo $!", grace=0.5)
    assert await run(proc, sink) == 0
    child = int(sink.data())
    await wait_gone([child])
    assert not group_alive(proc.info[1])


async def test_a_group_of_zombies_only_is_gone():
    # This test's child, alone in its group, exited and not reaped: kill() still finds the group,
    # yet nothing is left to end, so the grace (60 s) and the SIGKILL wait are not waited out.
    child = await asyncio.to_thread(subprocess.Popen, ["true"], process_group=0)
    await async_wait_for(lambda: asyncio.sleep(0, not process_alive(child.pid)), 10)
    await asyncio.wait_for(end_group(child.pid, 60), 30)
    assert child.wait() == 0  # not reaped by anyone else


async def test_the_kill_grace_is_waited_out_without_reading_proc_on_the_loop(monkeypatch):
    readers: set[str] = set()

    def spy(pid: int | str) -> list[bytes] | None:
        readers.add(threading.current_thread().name)
        return stat_fields(pid)

    monkeypatch.setattr(group, "stat_fields", spy)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True)"
    )
    argv = [sys.executable, "-c", code + "; time.sleep(300)"]
    child = await asyncio.to_thread(subprocess.Popen, argv, stdout=subprocess.PIPE, process_group=0)
    assert child.stdout is not None
    await asyncio.to_thread(child.stdout.readline)
    await end_group(child.pid, 0.3)
    assert await asyncio.to_thread(child.wait) == -signal.SIGKILL
    child.stdout.close()
    assert readers and threading.current_thread().name not in readers


async def test_an_escaped_descendant_holding_the_pipe_does_not_hold_the_job():
    # `setsid` takes the sleep out of the job's group; it keeps stdout open for 300 s.
    sink = Sink()
    proc = sh("setsid sh -c 'echo $$; exec sleep 300' & sleep 0.2")
    start = time.monotonic()
    assert await run(proc, sink) == 0
    assert time.monotonic() - start < 10
    escaped = int(sink.data())
    try:
        assert process_alive(escaped)
    finally:
        os.kill(escaped, signal.SIGKILL)


async def test_signal_reaches_the_group_and_not_after_reaping():
    sink = Sink()
    proc = sh("sleep 300 & echo $!; wait")
    task = asyncio.create_task(run(proc, sink))

    async def child() -> bytes:
        return sink.data()

    pid = int(await async_wait_for(child, 5))
    proc.signal(signal.SIGTERM)
    assert await task == -signal.SIGTERM
    await wait_gone([pid])
    proc.signal(signal.SIGTERM)  # a no-op once reaped


async def test_cancelling_run_kills_and_reaps():
    proc = sh("sleep 300")
    task = asyncio.create_task(run(proc))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert proc.exited
    await wait_gone([proc.info[0]])


def start_failure(*argv: str, cwd: str | None = None) -> SpawnError:
    with pytest.raises(SpawnError) as caught:
        spawn(*argv, cwd=cwd)
    return caught.value


def test_spawn_errors_say_what_to_fix_with_a_shells_exit_code(tmp_path):
    e = start_failure("no-such-program")
    assert (e.code, e.exit_code) == ("command_not_found", 127)
    assert str(e).startswith("command not found: no-such-program (not on PATH; check the spelling")
    e = start_failure(str(tmp_path / "nope"))
    assert (e.code, e.exit_code) == ("command_not_found", 127)
    assert str(e).startswith(f"command not found: {tmp_path / 'nope'} (no such file")
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    e = start_failure(str(script))
    assert (e.code, e.exit_code) == ("command_not_executable", 126)
    assert "permission denied" in str(e)
    e = start_failure("./", cwd=str(tmp_path))
    assert (e.exit_code, str(e)) == (126, "command not executable: ./ (it is a directory)")
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    e = start_failure(str(script))
    assert e.exit_code == 126 and "its #! interpreter was not found" in str(e)
    script.write_text("echo no #! line\n")
    e = start_failure(str(script))
    assert e.exit_code == 126 and "a script needs a #! line" in str(e)
    e = start_failure("true", cwd=str(tmp_path / "missing"))
    assert (e.code, e.exit_code) == ("spawn_failed", None)
    with pytest.raises(SpawnError, match="working directory .* does not exist"):
        spawn("true", cwd=str(tmp_path / "missing"))


# Alternates stdout and stderr, a write every millisecond or more. After each write it waits
# (up to 0.1 s) until the write has been read, so a loaded machine that schedules the reader
# late cannot take two writes at once and blur their order: what is tested is that the runner
# reads each stream as it is written, and keeps the order of its reads.
ALTERNATE = """
import fcntl, os, struct, sys, termios, time
def unread(fd):
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"    "))[0]
for i in range(int(sys.argv[1])):
    fd = 1 if i % 2 == 0 else 2
    os.write(fd, b"%d\\n" % i)
    deadline = time.monotonic() + 0.1
    while unread(fd) and time.monotonic() < deadline:
        time.sleep(0.0002)
    time.sleep(0.001)
"""


def lines_in_order(batches: list[tuple[EventType, bytes]]) -> list[tuple[EventType, int]]:
    return [(s, int(n)) for s, data in batches for n in data.split()]


def alternating(n: int) -> list[tuple[EventType, int]]:
    return [(EventType.STDOUT if i % 2 == 0 else EventType.STDERR, i) for i in range(n)]


async def test_stdout_and_stderr_keep_the_order_of_writes_a_millisecond_apart():
    # A window far longer than the writes' spacing: read once per window, each stream's writes
    # would gather in its pipe and come out in runs (all of stdout's, then all of stderr's).
    sink = Sink()
    assert await run(spawn(sys.executable, "-c", ALTERNATE, str(MAX_RUNS)), sink, window=1.0) == 0
    assert lines_in_order(sink.batches) == alternating(MAX_RUNS)
    assert len(sink.batches) == MAX_RUNS  # one event per run of a stream


async def test_a_window_holds_at_most_max_runs_events_and_all_the_output():
    script = "for i in $(seq 0 999); do echo $i; echo $i >&2; done"
    sink = Sink()
    assert await run(sh(script), sink, window=1.0) == 0
    # The first read is recorded at once, the rest of the job's output falls within one window.
    assert len(sink.batches) <= 2 * MAX_RUNS
    assert sink.data(EventType.STDOUT) == sink.data(EventType.STDERR)
    assert sink.data() == b"".join(b"%d\n" % i for i in range(1000))


async def test_merged_stderr_is_in_the_exact_order_of_writes():
    script = "for i in $(seq 0 199); do echo $i; echo $i >&2; done"
    sink = Sink()
    assert await run(spawn("/bin/sh", "-c", script, merge=True), sink) == 0
    assert {s for s, _ in sink.batches} == {EventType.STDOUT}
    assert sink.data() == b"".join(b"%d\n%d\n" % (i, i) for i in range(200))
