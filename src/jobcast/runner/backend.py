"""The backend swap point: what the supervisor asks of whatever starts and drives processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..models import EventType
from ..store.base import ProcessInfo

__all__ = ["Backend", "OutputSink", "Process", "SpawnError", "SpawnRequest", "Window"]

Window = Callable[[], float]


class OutputSink(Protocol):
    async def __call__(self, stream: EventType, data: bytes) -> None:
        """Record one batch of a stream's output; called in order, one batch at a time."""


@dataclass(frozen=True, slots=True)
class SpawnRequest:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdin: bool = False
    #: stderr onto stdout's pipe: one stream, in the exact order of the writes
    merge_stderr: bool = False
    #: a file to read as stdin instead of /dev/null (not with `stdin` or `pty`)
    stdin_file: str | None = None
    pty: bool = False
    cols: int = 80
    rows: int = 24
    #: between SIGTERM and SIGKILL when what the process left behind in its group is ended
    kill_grace: float = 5.0


class SpawnError(Exception):
    """The process could not start; the message says what to fix.

    `code` names the failure for the `error` event; `exit_code` is what a shell would have
    exited with (127: command not found, 126: not executable), None when it has no such code.
    """

    def __init__(self, message: str, code: str = "spawn_failed", exit_code: int | None = None):
        super().__init__(message)
        self.code, self.exit_code = code, exit_code


class Process(Protocol):
    """One job's process as the supervisor drives it (local now; a per-job supervisor later)."""

    #: pid, process group id, start time: what a restarted server needs to recognise it
    info: ProcessInfo

    @property
    def exited(self) -> bool:
        """The process itself has ended (output may still be draining)."""

    async def run(self, sink: OutputSink, window: Window) -> int:
        """Pump output into `sink` until the process has ended, been reaped and drained.

        `window()` gives the seconds to let output gather between reads. Returns the return code
        (negative: the signal that ended it). Call once.
        """

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole process group; a no-op once the job has been reaped."""

    async def write(self, data: bytes, eof: bool = False) -> int:
        """Queue `data` for the process's input without blocking; `eof` ends the input after it.

        Raises:
            Conflict: the input is closed, or too much is still waiting to be read.
        """

    async def interrupt(self) -> str:
        """Interrupt the program in the foreground as Ctrl-C at a terminal does.

        Through a PTY: the terminal's interrupt character (VINTR) is written to it, so the line
        discipline signals the foreground process group and a shell survives it. Without one:
        SIGINT to the whole process group. Returns which: "VINTR" or "SIGINT".

        Raises:
            Conflict: the terminal's input is closed, or too much is still waiting to be read.
        """

    def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's window size.

        Raises:
            Conflict: the process has no terminal.
        """


class Backend(Protocol):
    async def spawn(self, request: SpawnRequest) -> Process:
        """Start the process with output held (in its pipes) until `run` reads it.

        Raises:
            SpawnError: it could not start.
        """
