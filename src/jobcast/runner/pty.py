"""PTY jobs: a pseudo-terminal as the controlling terminal; pumping and reaping from process.py."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import termios

from ..models import EventType
from .backend import OutputSink, SpawnRequest, Window
from .process import LocalProcess, spawn_error
from .reaper import JOB_ID_ENV

__all__ = ["PTY_TERM", "PtyProcess", "set_winsize", "spawn_pty"]

#: what a PTY job's TERM is unless its spec sets one: xterm.js and most terminals speak it
PTY_TERM = "xterm-256color"


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal() -> None:
    # Runs in the child after setsid() and before exec: fd 0 is the slave; make it the session's
    # controlling terminal, so ^C, job control and SIGHUP on hang-up work as in a real terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _control_char(fd: int, index: int, default: bytes) -> bytes:
    """One of the terminal's special characters (termios c_cc), as the program set it now."""
    try:
        char = termios.tcgetattr(fd)[6][index]
    except termios.error:
        return default
    # _POSIX_VDISABLE (0) means the program turned it off; a terminal would then send the key
    # as it is, which is the default here too.
    return char if isinstance(char, bytes) and char and char != b"\0" else default


def _eof_byte(fd: int) -> bytes:
    """The terminal's end-of-file character (^D unless someone changed it)."""
    return _control_char(fd, termios.VEOF, b"\x04")


class PtyProcess(LocalProcess):
    """A LocalProcess whose one output is the PTY master; input goes to the master too."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        master: int,
        kill_grace: float,
        job_id: str | None = None,
    ) -> None:
        # Reading, writing and resizing each get their own descriptor of the master, so each
        # closes its own when done and none can act on a number the kernel has since reused.
        self._tty = os.dup(master)
        super().__init__(
            popen,
            [(master, EventType.STDOUT)],
            os.dup(master),
            kill_grace,
            eof_byte=_eof_byte(master),
            job_id=job_id,
        )

    async def run(self, sink: OutputSink, window: Window) -> int:
        try:
            return await super().run(sink, window)
        finally:
            os.close(self._tty)
            self._tty = -1

    async def interrupt(self) -> str:
        # Read at each interrupt, not at spawn: the program may have changed it (`stty intr`).
        # The line discipline turns it into SIGINT for the foreground group only when ISIG is
        # on; a program in raw mode reads it as the key, exactly as at a real terminal.
        char = _control_char(self._tty, termios.VINTR, b"\x03") if self._tty >= 0 else b"\x03"
        await self.write(char)
        return "VINTR"

    def resize(self, cols: int, rows: int) -> None:
        if self._tty < 0:
            return
        set_winsize(self._tty, cols, rows)
        # The kernel tells only the terminal's foreground group; the job's own group may be another.
        self.signal(signal.SIGWINCH)


def spawn_pty(request: SpawnRequest) -> PtyProcess:
    """Start the program on a new PTY of `request.cols` x `request.rows`, in a new session."""
    master, slave = os.openpty()
    env = dict(request.env)
    env.setdefault("TERM", PTY_TERM)
    try:
        set_winsize(slave, request.cols, request.rows)
        popen = subprocess.Popen(
            request.argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=request.cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
    except OSError as e:
        os.close(master)
        raise spawn_error(e, request.argv, request.cwd) from None
    finally:
        # Only the child may hold the slave, so the master reads EIO (EOF) once the job is gone.
        os.close(slave)
    return PtyProcess(popen, master, request.kill_grace, request.env.get(JOB_ID_ENV))
