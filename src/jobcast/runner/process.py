"""Local processes: spawn in a new session, pump output in batches, write input, signal, reap."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import math
import os
import signal
import subprocess
import time

from ..errors import Conflict
from ..models import EventType
from ..store.base import ProcessInfo
from .backend import OutputSink, SpawnError, SpawnRequest, Window
from .group import end_group, read_starttime, signal_group
from .limits import spawn_failure, utf8_boundary
from .reaper import JOB_ID_ENV, disown, end_strays, own

__all__ = ["LocalProcess", "spawn_pipes"]

logger = logging.getLogger("jobcast.runner")

#: Most bytes gathered into one output event. A catching-up client holds about one event in
#: flight (or store.base.BATCH_BYTES of smaller ones), so this bounds its memory too; 1 MiB (the
#: default pipe-max-size) because the cost of a bulk job's output is per event: 256 KiB events
#: streamed 1 GiB at 0.56 ms/MB of server user CPU, 1 MiB events at 0.22 (bench/RESULTS.md).
BATCH_MAX = 1 << 20
#: A read at least this large means the producer outruns the window: read again at once.
FAST_READ = 1 << 20
#: Input waiting for a child that does not read; past it, writes are refused rather than buffered.
INPUT_LIMIT = 1 << 20
#: While both streams wrote within this many seconds, each is read as soon as it has data.
INTERLEAVE_HOLD = 1.0
#: Most runs of one stream in a window's batch: each is an event to fan out to every follower.
MAX_RUNS = 16
#: After the process and its group are gone, how long an escaped descendant may hold the pipes.
DRAIN_GRACE = 0.5


@functools.cache
def _pipe_size() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return min(int(f.read()), BATCH_MAX)
    except (OSError, ValueError):
        return 0


def _pipe() -> tuple[int, int]:
    """A pipe whose buffer holds a whole batch of fast output (BATCH_MAX, where allowed)."""
    r, w = os.pipe()
    if _pipe_size():
        # Refused past the user's pipe-buffer quota; the default size still works, only slower.
        with contextlib.suppress(OSError):
            fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, _pipe_size())
    return r, w


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Stream:
    """One output fd of a process, as the pump reads it."""

    __slots__ = ("eof", "fd", "gathered", "held", "last_data", "type", "watching")

    def __init__(self, fd: int, type: EventType) -> None:
        os.set_blocking(fd, False)
        self.fd, self.type = fd, type
        #: the start of a UTF-8 character whose end has not been read yet
        self.held = b""
        self.eof = False
        #: a reader is registered: it is read as soon as it has data
        self.watching = False
        #: bytes read since the last flush
        self.gathered = 0
        self.last_data = -math.inf


class _Pump:
    """Reads a process's output fds into one batch that keeps the order of the reads.

    A stream that writes alone is read at most once per window: its pipe holds the bytes meanwhile
    (PERF.md: batch at the source). While two streams both write (within INTERLEAVE_HOLD of each
    other), each is read as soon as it has data, so writes on stdout and stderr keep their order
    down to the loop's latency; a stream that gathers FAST_READ in one window goes back to one read
    per window. A read on one stream first drains a stream that was left to fill: its bytes were
    written earlier. Once per window the batch becomes events, one per run of a stream: at most
    MAX_RUNS of them, after which the rest of the window's output joins its stream's last run
    (the order is lost there, but the events a job costs its followers stay bounded).
    """

    def __init__(
        self, outputs: list[tuple[int, EventType]], sink: OutputSink, window: Window
    ) -> None:
        self._streams = [_Stream(fd, stream) for fd, stream in outputs]
        self._sink, self._window = sink, window
        self._loop = asyncio.get_running_loop()
        #: runs of one stream's reads, oldest first
        self._batch: list[tuple[EventType, list[bytes]]] = []
        self._size = 0
        self._wake = asyncio.Event()
        self._due = -math.inf
        self._stopping = False
        self._closed = False
        self._sink_failed = False

    async def run(self) -> None:
        try:
            self._update()
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not (self._stopping or all(s.eof for s in self._streams)):
                    await self._rest(self._due)
                tick_at = time.monotonic()
                self._tick()
                fast = self._size >= FAST_READ
                self._due = tick_at if fast else tick_at + self._window()
                await self._flush()
                if all(s.eof for s in self._streams) and not self._batch:
                    return
                if fast:
                    # The producer outruns the window: read again as soon as there is more.
                    for s in self._streams:
                        s.gathered = 0
                    self._update()
                elif any(not (s.eof or s.watching) for s in self._streams):
                    self._wake.set()  # a stream fills its pipe: read it when the window is over
        finally:
            self.close()

    @staticmethod
    async def _rest(until: float) -> None:
        """Sleep until `until` (monotonic): one window from the last read, not from now.

        The events just emitted are being written to their followers by callbacks already queued;
        yield to them first, then sleep only what is left. Sleeping at once would not do: uvloop
        (libuv) measures a timer from the time cached at the start of the loop iteration, and
        then polls for that whole delay after the fan-out has run, so each cycle would take the
        window *plus* the fan-out (40 ms instead of 25 with 1,000 followers).
        """
        await asyncio.sleep(0)
        left = until - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)

    def stop(self) -> None:
        """Read what is there now, record it and end, without waiting for EOF."""
        self._stopping = True
        self._wake.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for s in self._streams:
                if s.watching:
                    self._loop.remove_reader(s.fd)
                    s.watching = False
                os.close(s.fd)

    def _tick(self) -> None:
        """The window is over: read the streams left to fill (all of them when stopping)."""
        for s in self._streams:
            s.gathered = 0
        for s in self._streams:
            if not s.eof and (self._stopping or not s.watching):
                self._read(s)
            if self._stopping and not s.eof:
                s.eof = True
                self._add(s.type, s.held)
        self._update()

    def _readable(self, ready: _Stream) -> None:
        for s in self._streams:
            if s is not ready and not (s.eof or s.watching):
                self._read(s)
        self._read(ready)
        self._update()
        self._wake.set()

    def _update(self) -> None:
        """Watch the streams to read as soon as they have data; leave the others to fill."""
        now = time.monotonic()
        interleaving = sum(s.last_data > now - INTERLEAVE_HOLD for s in self._streams) > 1
        room = self._size < BATCH_MAX and not self._stopping
        # Past MAX_RUNS the order in this window is lost anyway: let the pipes fill until the next.
        eager = interleaving and len(self._batch) < MAX_RUNS
        for s in self._streams:
            idle = s.gathered == 0 or (eager and s.gathered < FAST_READ)
            want = room and idle and not s.eof
            if want and not s.watching:
                self._loop.add_reader(s.fd, self._readable, s)
            elif s.watching and not want:
                self._loop.remove_reader(s.fd)
            s.watching = want

    def _read(self, s: _Stream) -> None:
        """Read all there is (up to the batch's room) and add it to the batch."""
        room = BATCH_MAX - self._size - len(s.held)
        parts = [s.held] if s.held else []
        total = 0
        while total < room:
            want = room - total
            try:
                part = os.read(s.fd, want)
            except BlockingIOError:
                break
            except OSError as e:
                # A PTY master reads EIO once no process holds the terminal open: its EOF.
                # Anything else ends this stream too, rather than leave the pipe unread.
                if e.errno != errno.EIO:
                    logger.error("reading %s failed: %s", s.type, e)
                part = b""
            if not part:
                s.eof = True
                break
            parts.append(part)
            total += len(part)
            if len(part) < want and not self._stopping:
                # A short read: the pipe had no more just now. Asking again would cost a
                # syscall and a BlockingIOError per event; the next tick reads what comes.
                break
        if total:
            s.gathered += total
            s.last_data = time.monotonic()
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        cut = len(data) if s.eof else utf8_boundary(data)
        s.held = data[cut:]
        self._add(s.type, data[:cut] if s.held else data)

    def _add(self, stream: EventType, data: bytes) -> None:
        if not data:
            return
        self._size += len(data)
        if self._batch and self._batch[-1][0] is stream:
            self._batch[-1][1].append(data)
            return
        if len(self._batch) >= MAX_RUNS:
            for run_stream, parts in reversed(self._batch):
                if run_stream is stream:
                    parts.append(data)
                    return
        self._batch.append((stream, [data]))

    async def _flush(self) -> None:
        batch, self._batch, self._size = self._batch, [], 0
        for stream, parts in batch:
            await self._emit(stream, parts[0] if len(parts) == 1 else b"".join(parts))
        self._update()  # a stream held back while the batch was full may go on

    async def _emit(self, stream: EventType, data: bytes) -> None:
        if self._sink_failed:
            return
        try:
            await self._sink(stream, data)
        except Exception:
            # Keep draining (and discarding) so the job never blocks on a full pipe.
            self._sink_failed = True
            logger.exception("could not record %s output; discarding the rest", stream)


class _Input:
    """Non-blocking writes to the process's input; the rest is buffered (bounded) for the loop."""

    def __init__(self, fd: int, eof_byte: bytes | None) -> None:
        self._fd = fd
        self._eof_byte = eof_byte
        self._buf = bytearray()
        self._closing = False
        self._closed = False
        self._writing = False
        os.set_blocking(fd, False)

    def write(self, data: bytes, eof: bool) -> int:
        if self._closed or self._closing:
            raise Conflict("its input was closed (by an earlier eof, or the process closed it)")
        payload = data + self._eof_byte if eof and self._eof_byte else data
        # One write of any size is taken (its caller bounds it); more pile up only to the limit.
        if self._buf and len(self._buf) + len(payload) > INPUT_LIMIT:
            raise Conflict(
                f"it is not reading its input ({len(self._buf)} bytes still wait); try again later"
            )
        self._buf += payload
        self._closing = eof and self._eof_byte is None
        self._flush()
        if self._closed and not self._closing:
            raise Conflict("it no longer reads its input (it closed it, or exited)")
        return len(data)

    def _flush(self) -> None:
        while self._buf:
            try:
                n = os.write(self._fd, self._buf)
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            del self._buf[:n]
        loop = asyncio.get_running_loop()
        if self._buf and not self._writing:
            loop.add_writer(self._fd, self._flush)
            self._writing = True
        elif not self._buf:
            if self._writing:
                loop.remove_writer(self._fd)
                self._writing = False
            if self._closing:
                self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.clear()
        if self._writing:
            asyncio.get_running_loop().remove_writer(self._fd)
            self._writing = False
        os.close(self._fd)


class LocalProcess:
    """A child of this server: reaped through a pidfd, output read from fds this object owns."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        outputs: list[tuple[int, EventType]],
        input_fd: int | None,
        kill_grace: float,
        eof_byte: bytes | None = None,
        job_id: str | None = None,
    ) -> None:
        self._popen = popen
        # Reaped here only (through the pidfd and Popen), never as an orphan.
        own(popen.pid)
        self._job_id = job_id
        self._outputs = outputs
        self._input = _Input(input_fd, eof_byte) if input_fd is not None else None
        self._kill_grace = kill_grace
        self._reaped = False
        self.info: ProcessInfo = (popen.pid, popen.pid, read_starttime(popen.pid) or 0)
        # Opened before anyone can reap the child, so it always refers to this very process.
        self._pidfd = os.pidfd_open(popen.pid)

    @property
    def exited(self) -> bool:
        return self._popen.returncode is not None

    async def run(self, sink: OutputSink, window: Window) -> int:
        pump = _Pump(self._outputs, sink, window)
        task = asyncio.create_task(pump.run(), name=f"jobcast-pump-{self.info[0]}")
        try:
            rc = await self._reap()
            # Whatever it left would outlive the job unsupervised: end it too, in its group and
            # out of it (daemons), before they can hold the output pipes open.
            await end_group(self.info[1], self._kill_grace)
            if self._job_id is not None:
                await end_strays(self._job_id, self._kill_grace)
            _, pending = await asyncio.wait({task}, timeout=DRAIN_GRACE)
            if pending:
                logger.info("pid %d: output still open after exit; closing it", self.info[0])
                pump.stop()
                await asyncio.wait(pending)
            return rc
        finally:
            self._finish(pump, task)

    async def _reap(self) -> int:
        loop = asyncio.get_running_loop()
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self._pidfd, _resolve, fut)
            try:
                await fut
            finally:
                loop.remove_reader(self._pidfd)
            rc = self._popen.poll()
            if rc is not None:
                return rc

    def _finish(self, pump: _Pump, task: asyncio.Task[None]) -> None:
        """Release everything, also when `run` is cancelled: no process, fd or task outlives it."""
        if self._popen.returncode is None:
            signal_group(self.info[1], signal.SIGKILL)
            self._popen.wait()
        self._reaped = True
        disown(self.info[0])
        pump.close()
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is not None:
            logger.error("output pump failed", exc_info=task.exception())
        if self._input is not None:
            self._input.close()
        os.close(self._pidfd)

    def signal(self, sig: int) -> None:
        if not self._reaped:
            signal_group(self.info[1], sig)

    async def write(self, data: bytes, eof: bool = False) -> int:
        if self._input is None:
            raise Conflict("it was started without stdin")
        return self._input.write(data, eof)

    async def interrupt(self) -> str:
        self.signal(signal.SIGINT)
        return "SIGINT"

    def resize(self, cols: int, rows: int) -> None:
        raise Conflict("it does not run in a terminal; start it with pty=true to resize it")


def spawn_error(exc: OSError, argv: list[str], cwd: str) -> SpawnError:
    failure = spawn_failure(exc, argv[0], cwd)
    return SpawnError(failure.message, failure.code, failure.exit_code)


def spawn_pipes(request: SpawnRequest) -> LocalProcess:
    """Start the program with its own pipes for stdout and stderr (or one for both), in a new
    session."""
    out_r, out_w = _pipe()
    err_r, err_w = (None, None) if request.merge_stderr else _pipe()
    in_r, in_w = os.pipe() if request.stdin else (None, None)
    if in_r is None and request.stdin_file is not None:
        try:
            in_r = os.open(request.stdin_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            for pipe_fd in (out_r, out_w, err_r, err_w):
                if pipe_fd is not None:
                    os.close(pipe_fd)
            raise SpawnError(f"cannot open {request.stdin_file} as stdin: {e.strerror}") from None
    try:
        popen = subprocess.Popen(
            request.argv,
            stdin=in_r if in_r is not None else subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w if err_w is not None else out_w,
            cwd=request.cwd,
            env=request.env,
            start_new_session=True,
        )
    except OSError as e:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        raise spawn_error(e, request.argv, request.cwd) from None
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    outputs = [(out_r, EventType.STDOUT)]
    if err_r is not None:
        outputs.append((err_r, EventType.STDERR))
    return LocalProcess(
        popen, outputs, in_w, request.kill_grace, job_id=request.env.get(JOB_ID_ENV)
    )
