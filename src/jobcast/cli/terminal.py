"""This terminal as a PTY job's terminal, for `attach` and `run --pty`: raw mode, keystrokes
and window size to the job over its WebSocket, its output to this screen, a key to detach.

In raw mode the local terminal interprets nothing: Ctrl-C, Ctrl-Z, Ctrl-\\, Tab and the rest
reach the job's PTY as bytes, whose line discipline does with them what a terminal's does
(SIGINT to the foreground process group, not to the shell). Echo is the job's, not ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import select
import signal
import sys
import termios
import tty
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..client.asyncio import AsyncClient, AsyncJobSocket
from ..client.base import RECONNECT_TIMEOUT
from ..client.stream import Reconnect
from ..errors import ConnectionFailed, JobcastError, JobFinished, MissingScope
from ..models import OUTPUT_EVENTS, EventType, Job
from . import render
from .attach import RECENT_BYTES, key_name

__all__ = ["attach_session", "raw_terminal"]

#: keystrokes kept while the connection is down, sent once it is back; more are dropped
PENDING_BYTES = 64 * 1024
#: signals that end the session as a detach would (terminal restored), exit 128+N
_ENDING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal on `fd` in raw mode, and back as it was however the block ends."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        # TCSADRAIN: the job's last output reaches the screen in raw mode, as it was meant.
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size(fds: tuple[int, ...]) -> tuple[int, int]:
    for fd in fds:
        with contextlib.suppress(OSError):
            cols, rows = os.get_terminal_size(fd)
            if cols > 0 and rows > 0:
                return min(cols, 1000), min(rows, 1000)
    return 80, 24


def _write(fd: int, data: bytes) -> None:
    """All of `data` to the screen; a terminal that is slower than the job holds the session
    up as it would hold up the program writing to it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # a descriptor someone left non-blocking
            select.select([], [fd], [])


class _Session:
    """One attached terminal: the cursor into the job's events and what waits to be sent."""

    def __init__(
        self,
        client: AsyncClient,
        job: Job,
        *,
        read_only: bool,
        detach_key: bytes | None,
        stdin: int,
        stdout: int,
    ) -> None:
        self.client, self.job = client, job
        self.read_only, self.detach_key = read_only, detach_key
        self.stdin, self.stdout = stdin, stdout
        self.cursor = job.last_seq
        #: keystrokes and window sizes to send, in order; kept while the connection is down
        self.outbox: deque[bytes | tuple[int, int]] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        self.ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.final: render.Job | None = None
        self.detached = False

    # -- the screen -------------------------------------------------------------------------------

    async def show_recent(self, max_bytes: int) -> None:
        """The end of what the job wrote so far, up to the cursor the stream resumes from: the
        job's byte counts and `last_seq` come from the one snapshot (`GET /jobs/{id}`)."""
        size = self.job.stdout_bytes + self.job.stderr_bytes
        start = max(0, size - max_bytes)
        if size <= start:
            return
        data = await self.client.log(self.job.id, offset=start, end=size)
        if start > 0 and 0 <= (nl := data.find(b"\n")) < len(data) // 2:
            data = data[nl + 1 :]  # from the start of a line, not the middle of one
        _write(self.stdout, data)

    def notice(self, text: str) -> None:
        _write(self.stdout, f"\r\njobcast: {text}\r\n".encode())

    # -- the keyboard and the window --------------------------------------------------------------

    def on_keys(self) -> None:
        try:
            data = os.read(self.stdin, 4096)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.stdin)  # stdin ended: watch on
            return
        if self.detach_key is not None and self.detach_key in data:
            data = data[: data.index(self.detach_key)]
            self.detached = True
        if data and not self.read_only:
            if self.queued + len(data) <= PENDING_BYTES:  # else the connection is long gone
                self.queued += len(data)
                self._post(data)
        if self.detached and not self.ended.done():
            self.ended.set_result(0)

    def on_winch(self) -> None:
        if not self.read_only:
            self._post(_size((self.stdout, self.stdin)))

    def _post(self, item: bytes | tuple[int, int]) -> None:
        self.outbox.append(item)
        self.wake.set()

    async def _sender(self, sock: AsyncJobSocket) -> None:
        """Send the outbox in order; what fails stays for the next connection. Keys that piled
        up meanwhile go as one message (each is an `input` event and a trace entry)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                if self.read_only:  # the server said this token may not type
                    self.outbox.clear()
                    self.queued = 0
                    break
                item = self.outbox[0]
                if isinstance(item, tuple):
                    await sock.resize(*item)
                    self.outbox.popleft()
                    continue
                keys = list(itertools.takewhile(lambda x: isinstance(x, bytes), self.outbox))
                data = b"".join(keys)  # type: ignore[arg-type]  # bytes, as taken
                await sock.send_input(data)
                for _ in keys:
                    self.outbox.popleft()
                self.queued -= len(data)

    # -- the stream -------------------------------------------------------------------------------

    async def stream(self) -> None:
        """The job's output from the cursor on, reconnecting and resuming from the last seq seen,
        until its `complete` event (the exit code goes to `ended`)."""
        retry = Reconnect(self.client.url, RECONNECT_TIMEOUT)
        self.on_winch()  # the window's size goes first, once connected
        while True:
            failure: BaseException | None = None
            try:
                async with await self.client.connect(self.job.id, after=self.cursor) as sock:
                    retry.connected()
                    self.wake.set()
                    sender = asyncio.get_running_loop().create_task(self._sender(sock))
                    try:
                        if await self._pump(sock, retry):
                            return
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await sender
                final = await self.client.job(self.job.id)
                if final.status.is_final:  # closed after the end; the complete event not seen
                    self._end(final.model_dump(mode="json"))
                    return
            except (JobcastError, OSError) as e:
                failure = e
            await asyncio.sleep(retry.delay(failure))

    async def _pump(self, sock: AsyncJobSocket, retry: Reconnect) -> bool:
        """Output to the screen until the job completes (True) or the socket closes (False)."""
        while True:
            try:
                async for ev in sock.events():
                    if ev.seq <= self.cursor:
                        continue  # already shown before a reconnect
                    self.cursor = ev.seq
                    if ev.type in OUTPUT_EVENTS and ev.raw:
                        _write(self.stdout, ev.raw)
                        retry.progressed()
                    elif ev.type is EventType.COMPLETE:
                        self._end({**self.job.model_dump(mode="json"), **ev.data})
                        return True
                return False
            except ConnectionFailed:
                raise
            except JobcastError as e:
                if sock.closed:
                    raise
                # The server's answer to a message of ours (input the job could not take yet,
                # a token without `control`); the stream goes on.
                if isinstance(e, MissingScope):
                    if not self.read_only:
                        self.read_only = True  # said once, not at every key
                        self.notice(f"{e.message}; watching read-only")
                elif not isinstance(e, JobFinished):
                    self.notice(e.message)

    def _end(self, final: render.Job) -> None:
        self.final = final
        if not self.ended.done():
            self.ended.set_result(render.exit_code_of(final))


async def attach_session(
    client: AsyncClient,
    job: Job,
    *,
    read_only: bool = False,
    detach_key: bytes | None = b"\x1d",
    recent_bytes: int = RECENT_BYTES,
) -> int:
    """Be the job's terminal until it ends (its exit code) or the user detaches (0).

    Raises:
        click.UsageError: stdin is not a terminal (and the session is not read-only).
        JobcastError: the server refused, or could not be reached for `RECONNECT_TIMEOUT`.
    """
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    typing = os.isatty(stdin)
    if not typing and not read_only:
        raise click.UsageError("attach needs a terminal on stdin to type into; or --read-only")
    if not job.pty:
        raise click.UsageError(
            f"job {job.id} does not run in a terminal (start it with --pty); "
            f"`jobcast follow {job.id}` follows its output"
        )
    sys.stdout.flush()
    how = f"; {key_name(detach_key)} to detach" if detach_key is not None else ""
    watching = " read-only" if read_only else ""
    click.echo(f"jobcast: attached{watching} to job {job.name or job.id}{how}", err=True)
    if job.record_input and not read_only:
        # Said before the first key: a password typed here would be kept with the job.
        click.echo(
            f"jobcast: job {job.name or job.id} records its input: what you type is recorded",
            err=True,
        )
    session = _Session(
        client, job, read_only=read_only, detach_key=detach_key, stdin=stdin, stdout=stdout
    )
    loop = asyncio.get_running_loop()
    with raw_terminal(stdin) if typing else contextlib.nullcontext():
        await session.show_recent(recent_bytes)
        if job.status.is_final:
            return render.exit_code_of(job.model_dump(mode="json"))
        streamer = loop.create_task(session.stream())
        if typing:
            loop.add_reader(stdin, session.on_keys)
        loop.add_signal_handler(signal.SIGWINCH, session.on_winch)
        for sig in _ENDING:
            loop.add_signal_handler(sig, _ender(session.ended, 128 + sig))
        try:
            waits: list[asyncio.Future[Any]] = [streamer, session.ended]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for sig in (signal.SIGWINCH, *_ENDING):
                loop.remove_signal_handler(sig)
            if typing:
                loop.remove_reader(stdin)
            streamer.cancel()
            await asyncio.wait([streamer])
        failure = None if streamer.cancelled() else streamer.exception()
    if not session.ended.done():
        assert failure is not None  # the stream ends by setting `ended`, or by an error
        raise failure
    code = session.ended.result()
    if typing:
        click.echo(err=True)  # off the job's last line, where its cursor was
    if session.final is None:
        click.echo(
            f"jobcast: detached from job {job.name or job.id}, which goes on; "
            f"`jobcast attach {job.name or job.id}` attaches again",
            err=True,
        )
    elif (line := render.closing_line(session.final)) is not None:
        click.echo(line, err=True)
    return code


def _ender(ended: asyncio.Future[int], code: int) -> Callable[[], None]:
    def end() -> None:
        if not ended.done():
            ended.set_result(code)

    return end
