"""The runner's policies: output cap, batch window, UTF-8 boundaries, signals, outcomes, failures
to start."""

from __future__ import annotations

import errno
import math
import os
import re
import signal
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import BadRequest
from ..models import JobStatus

__all__ = [
    "MAX_WINDOW_MS",
    "Outcome",
    "OutputCap",
    "StartFailure",
    "batch_window",
    "describe_exit",
    "outcome",
    "parse_signal",
    "shell_failure",
    "signal_name",
    "spawn_failure",
    "utf8_boundary",
]

#: The batch window never grows past this, however many clients follow a job (PERF.md: ~50 ms).
MAX_WINDOW_MS = 25.0

# Aliases share a number with a better-known name; listing them would only confuse users.
_ALIASES = frozenset({"SIGIOT", "SIGCLD", "SIGPOLL"})


@dataclass(slots=True)
class OutputCap:
    """Accounting of `max_output_bytes` for one job, stdout and stderr together.

    A limit of 0 keeps no output at all: the first byte already crosses it (the job still runs and
    its bytes are counted as dropped).
    """

    limit: int
    kept: int = 0
    dropped: int = 0

    def take(self, n: int) -> tuple[int, bool]:
        """Account for `n` new bytes: how many of them to keep, and whether this crossed the limit.

        The second value is True exactly once per job, so one notice is recorded.
        """
        keep = min(n, max(self.limit - self.kept, 0))
        over = n - keep
        crossed = over > 0 and self.dropped == 0
        self.kept += keep
        self.dropped += over
        return keep, crossed

    def notice(self) -> str:
        limit = f"output limit of {self.limit} bytes reached"
        return f"{limit}; further output is dropped (the job goes on)"


def batch_window(base_ms: float, followers: int) -> float:
    """Seconds to let a job's output gather in its pipe before the next read.

    One follower (or none) gets `base_ms`; each doubling of followers adds `base_ms`, up to
    MAX_WINDOW_MS (or `base_ms` itself if that is larger): more clients make each event
    costlier to fan out, so fewer, larger events pay off, while latency stays bounded.
    """
    if base_ms <= 0:
        return 0.0
    grown = base_ms * (1.0 + math.log2(max(followers, 1)))
    return min(grown, max(base_ms, MAX_WINDOW_MS)) / 1000.0


def utf8_boundary(data: bytes) -> int:
    """Where to cut `data` so the part before does not end inside a UTF-8 character.

    Only an incomplete trailing sequence (at most 3 bytes) is left after the cut; anything that is
    not UTF-8 is cut at the end, so binary output is never held back for long.
    """
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:
            continue
        if 0xC2 <= byte <= 0xDF:
            need = 2
        elif 0xE0 <= byte <= 0xEF:
            need = 3
        elif 0xF0 <= byte <= 0xF4:
            need = 4
        else:
            need = 1
        return n - back if need > back else n
    return n


def _valid_names() -> list[str]:
    members = sorted(
        (s for s in signal.Signals if s.name not in _ALIASES and not s.name.startswith("SIGRT")),
        key=lambda s: s.value,
    )
    return [s.name.removeprefix("SIG") for s in members]


def signal_name(number: int) -> str:
    """The canonical name of a signal number: "SIGTERM", or "SIGRTMIN+3" for real-time ones."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN < number <= signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"SIG{number}"


def parse_signal(sig: str | int) -> tuple[int, str]:
    """A signal given as "INT", "SIGINT", "int" or a number, as (number, canonical name).

    Raises:
        BadRequest: not a signal; the message lists the valid names.
    """
    text = str(sig).strip()
    number: int | None = None
    if text.lstrip("-").isdigit():
        number = int(text)
        if not 0 < number < signal.NSIG:
            number = None
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        member = getattr(signal.Signals, name, None)
        number = member.value if isinstance(member, signal.Signals) else None
    if number is None:
        valid = ", ".join(_valid_names())
        raise BadRequest(
            f"unknown signal {sig!r}; use a name ({valid}), with or without SIG, "
            f"or a number from 1 to {signal.NSIG - 1}"
        )
    return number, signal_name(number)


class Outcome(NamedTuple):
    status: JobStatus
    exit_code: int | None
    signal: str | None
    reason: str | None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal_name(-returncode)}"
    return f"exited with code {returncode}"


def outcome(returncode: int, ended_by: JobStatus | None, reason: str | None) -> Outcome:
    """The final record of a job whose process returned `returncode` (Popen's: < 0 is a signal).

    `ended_by` is the status the runner decided when it ended the process itself (cancelled,
    timed_out); otherwise 0 succeeds and anything else, a signal included, fails.
    """
    exit_code = returncode if returncode >= 0 else None
    sig = signal_name(-returncode) if returncode < 0 else None
    if ended_by is not None:
        return Outcome(ended_by, exit_code, sig, reason)
    if returncode == 0:
        return Outcome(JobStatus.SUCCEEDED, 0, None, None)
    return Outcome(JobStatus.FAILED, exit_code, sig, describe_exit(returncode))


class StartFailure(NamedTuple):
    """Why a program could not be run, as the `error` event and the final status tell it."""

    message: str
    #: the `error` event's code
    code: str
    #: what a shell exits with for it (127 not found, 126 not executable), or None
    exit_code: int | None


NOT_FOUND = "command_not_found"
NOT_EXECUTABLE = "command_not_executable"


def spawn_failure(exc: OSError, program: str, cwd: str) -> StartFailure:
    """What to tell the user when `program` could not be started in `cwd`: what to fix."""
    if exc.filename == cwd or not os.path.isdir(cwd):
        message = (
            f"working directory {cwd!r} does not exist or is not a directory; give an existing cwd"
        )
        return StartFailure(message, "spawn_failed", None)
    path = os.path.join(cwd, program) if "/" in program else None
    if isinstance(exc, FileNotFoundError):
        if path is not None and os.path.isfile(path):
            # execve says ENOENT for a script whose `#!` interpreter is missing (shells: 126).
            why = "its #! interpreter was not found"
            return StartFailure(f"command not executable: {program} ({why})", NOT_EXECUTABLE, 126)
        hint = "no such file" if path is not None else "not on PATH"
        message = f"command not found: {program} ({hint}; check the spelling or give its full path)"
        return StartFailure(message, NOT_FOUND, 127)
    if isinstance(exc, PermissionError):
        if path is not None and os.path.isdir(path):
            why = "it is a directory"
        else:
            why = "permission denied; is it an executable file?"
        return StartFailure(f"command not executable: {program} ({why})", NOT_EXECUTABLE, 126)
    if exc.errno == errno.ENOEXEC:
        why = "not a format this system runs; a script needs a #! line"
        return StartFailure(f"command not executable: {program} ({why})", NOT_EXECUTABLE, 126)
    return StartFailure(f"could not start {program!r}: {exc.strerror or exc}", "spawn_failed", None)


#: The last line a POSIX shell writes before it exits 127 or 126 for a command it cannot run:
#: dash `sh: 1: x: not found`, bash `sh: line 1: x: command not found`, busybox `sh: x: not found`.
_SHELL_FAILURE = re.compile(
    r"(?:line )?(?:\d+: )?(?P<command>.+?): (?P<why>(?:command )?not found|Permission denied"
    r"|Is a directory|cannot execute.*)"
)


def shell_failure(shell: str, returncode: int, tail: bytes) -> StartFailure | None:
    """The command a shell (`shell -c ...`) could not run, from the end of its stderr.

    Only a shell that exited 127 or 126 with its own complaint as the last line it wrote counts;
    anything else (a program that exits 127 by itself, say) is the job's own business.
    """
    if returncode not in (126, 127):
        return None
    lines = tail.decode(errors="replace").replace("\r", "").rstrip("\n").rsplit("\n", 1)
    prefix = shell + ": "
    if not lines[-1].startswith(prefix):
        return None
    match = _SHELL_FAILURE.fullmatch(lines[-1][len(prefix) :])
    if match is None:
        return None
    command, why = match["command"], match["why"]
    if returncode == 127 and why.endswith("not found"):
        return StartFailure(f"command not found: {command}", NOT_FOUND, 127)
    if returncode == 126 and not why.endswith("not found"):
        return StartFailure(f"command not executable: {command} ({why})", NOT_EXECUTABLE, 126)
    return None
