"""Local processes: spawn in a new session, pump output in batches, write input, signal, reap."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
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

#: Most bytes gathered into one output event: what a catching-up client holds in flight is
#: about one event (see store.base.BATCH_BYTES), so this bounds its memory too.
BATCH_MAX = 256 << 10
#: A read at least this large means the producer outruns the window: read again at once.
FAST_READ = 256 << 10
#: Input waiting for a child that does not read; past it, writes are refused rather than buffered.
INPUT_LIMIT = 1 << 20
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
    """A pipe whose buffer holds a whole batch window of fast output (1 MiB where allowed)."""
    r, w = os.pipe()
    if _pipe_size():
        # Refused past the user's pipe-buffer quota; the default size still works, only slower.
        with contextlib.suppress(OSError):
            fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, _pipe_size())
    return r, w


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Pump:
    """Reads one output fd in batches: wait until readable, read all there is, one event, sleep."""

    def __init__(self, fd: int, stream: EventType, sink: OutputSink, window: Window) -> None:
        self._fd, self._stream, self._sink, self._window = fd, stream, sink, window
        os.set_blocking(fd, False)
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        self._closed = False
        self._sink_failed = False

    async def run(self) -> None:
        held = b""
        try:
            while not self._closed:
                if not self._stopping:
                    await self._readable()
                read_at = time.monotonic()
                chunk, eof = self._read()
                data = held + chunk if held else chunk
                if eof or self._stopping:
                    await self._emit(data)
                    return
                cut = utf8_boundary(data)
                held = data[cut:]
                await self._emit(data[:cut] if held else data)
                if len(chunk) < FAST_READ:
                    await self._rest(read_at + self._window())
        finally:
            self.close()

    @staticmethod
    async def _rest(until: float) -> None:
        """Sleep until `until` (monotonic): one window from the last read, not from now.

        The event just emitted is being written to its followers by callbacks already queued;
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
        if self._waiter is not None:
            _resolve(self._waiter)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = fut = loop.create_future()
        loop.add_reader(self._fd, _resolve, fut)
        try:
            await fut
        finally:
            self._waiter = None
            loop.remove_reader(self._fd)

    def _read(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        total = 0
        eof = False
        while total < BATCH_MAX:
            try:
                part = os.read(self._fd, BATCH_MAX - total)
            except BlockingIOError:
                break
            except OSError as e:
                # A PTY master reads EIO once no process holds the terminal open: its EOF.
                # Anything else ends this stream too, rather than leave the pipe unread.
                if e.errno != errno.EIO:
                    logger.error("reading %s failed: %s", self._stream, e)
                part = b""
            if not part:
                eof = True
                break
            parts.append(part)
            total += len(part)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), eof

    async def _emit(self, data: bytes) -> None:
        if not data or self._sink_failed:
            return
        try:
            await self._sink(self._stream, data)
        except Exception:
            # Keep draining (and discarding) so the job never blocks on a full pipe.
            self._sink_failed = True
            logger.exception("could not record %s output; discarding the rest", self._stream)


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
        pumps = [_Pump(fd, stream, sink, window) for fd, stream in self._outputs]
        tasks = [asyncio.create_task(p.run(), name=f"jobcast-pump-{self.info[0]}") for p in pumps]
        try:
            rc = await self._reap()
            # Whatever it left would outlive the job unsupervised: end it too, in its group and
            # out of it (daemons), before they can hold the output pipes open.
            await end_group(self.info[1], self._kill_grace)
            if self._job_id is not None:
                await end_strays(self._job_id, self._kill_grace)
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_GRACE)
            if pending:
                logger.info("pid %d: output still open after exit; closing it", self.info[0])
                for p in pumps:
                    p.stop()
                await asyncio.wait(pending)
            return rc
        finally:
            self._finish(pumps, tasks)

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

    def _finish(self, pumps: list[_Pump], tasks: list[asyncio.Task[None]]) -> None:
        """Release everything, also when `run` is cancelled: no process, fd or task outlives it."""
        if self._popen.returncode is None:
            signal_group(self.info[1], signal.SIGKILL)
            self._popen.wait()
        self._reaped = True
        disown(self.info[0])
        for p, t in zip(pumps, tasks, strict=True):
            p.close()
            if not t.done():
                t.cancel()
            elif not t.cancelled() and t.exception() is not None:
                logger.error("output pump failed", exc_info=t.exception())
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

    def resize(self, cols: int, rows: int) -> None:
        raise Conflict("it does not run in a terminal; start it with pty=true to resize it")


def spawn_error(exc: OSError, argv: list[str], cwd: str) -> SpawnError:
    return SpawnError(spawn_failure(exc, argv[0], cwd, os.path.isdir(cwd)))


def spawn_pipes(request: SpawnRequest) -> LocalProcess:
    """Start the program with its own pipes for stdout and stderr, in a new session."""
    out_r, out_w = _pipe()
    err_r, err_w = _pipe()
    in_r, in_w = os.pipe() if request.stdin else (None, None)
    if in_r is None and request.stdin_file is not None:
        try:
            in_r = os.open(request.stdin_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            for pipe_fd in (out_r, out_w, err_r, err_w):
                os.close(pipe_fd)
            raise SpawnError(f"cannot open {request.stdin_file} as stdin: {e.strerror}") from None
    try:
        popen = subprocess.Popen(
            request.argv,
            stdin=in_r if in_r is not None else subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
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
    outputs = [(out_r, EventType.STDOUT), (err_r, EventType.STDERR)]
    return LocalProcess(
        popen, outputs, in_w, request.kill_grace, job_id=request.env.get(JOB_ID_ENV)
    )
