"""How the CLI shows things: rich tables and colours when stdout is a terminal, plain text (one
record a line, tab-separated, no colour) when it is a pipe, and JSON on request.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import click
import orjson
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from ..models import Event, EventType, Job, JobStatus

__all__ = [
    "command_line",
    "elapsed",
    "event_line",
    "exit_code_of",
    "human_duration",
    "print_json",
    "print_mapping",
    "print_job",
    "print_jobs",
]

#: colour names that rich and click both know
STATUS_COLOURS: dict[str, str] = {
    JobStatus.QUEUED: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
    JobStatus.TIMED_OUT: "red",
    JobStatus.LOST: "bright_black",
}


def is_tty() -> bool:
    return sys.stdout.isatty()


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def command_line(job: Job) -> str:
    return job.command if job.command is not None else shlex.join(job.argv)


def human_duration(seconds: float | None) -> str:
    """`0.4s`, `12.3s`, `4m05s`, `2h03m`; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed(job: Job, now: float | None = None) -> float | None:
    """How long it ran, or has been running so far."""
    if job.started_at is None:
        return None
    end = job.finished_at if job.finished_at is not None else (now or time.time())
    return max(0.0, end - job.started_at)


def exit_code_of(job: Job) -> int:
    """The exit code a shell would show for the job, never 0 unless it succeeded:
    124 timed out (as timeout(1)), 255 lost, 128+N when signal N ended it, its own code,
    143 (128+SIGTERM) for a cancel that recorded no signal, else 1."""
    # status first: a timed-out job was ended by a signal, but timeout(1) says 124
    if job.status is JobStatus.TIMED_OUT:
        return 124
    if job.status is JobStatus.LOST:
        return 255
    signum = _signal_number(job.signal)
    if signum is not None:
        return 128 + signum
    if job.exit_code is not None:
        code = job.exit_code if job.exit_code >= 0 else 128 - job.exit_code
        # a job that did not succeed must not look like success to a shell
        return code if code or job.status is JobStatus.SUCCEEDED else 1
    if job.status is JobStatus.SUCCEEDED:
        return 0
    return 143 if job.status is JobStatus.CANCELLED else 1


def _signal_number(name: str | None) -> int | None:
    if not name:
        return None
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals["SIG" + name.upper().removeprefix("SIG")])
    except KeyError:
        return None


def _exit_text(job: Job) -> str:
    if job.signal:
        return job.signal
    return "" if job.exit_code is None else str(job.exit_code)


def print_jobs(jobs: Iterable[Job]) -> None:
    """A table on a terminal; else one job a line: id, name, status, command, time, exit."""
    now = time.time()
    rows = [
        (
            job.id,
            job.name or "",
            job.status,
            command_line(job),
            human_duration(elapsed(job, now)),
            _exit_text(job),
        )
        for job in jobs
    ]
    if not is_tty():
        for row in rows:
            click.echo("\t".join(str(cell).replace("\t", " ").replace("\n", " ") for cell in row))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("ID", "NAME", "STATUS", "COMMAND", "TIME", "EXIT"):
        table.add_column(title, overflow="ellipsis", no_wrap=True, max_width=60)
    for ident, name, status, command, took, code in rows:
        table.add_row(ident, name, Text(status.value, STATUS_COLOURS[status]), command, took, code)
    _console().print(table)


def _job_fields(job: Job) -> list[tuple[str, str]]:
    def when(ts: float | None) -> str:
        return (
            "" if ts is None else datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")
        )

    fields = [
        ("id", job.id),
        ("name", job.name or ""),
        ("status", job.status.value),
        ("command", command_line(job)),
        ("cwd", job.cwd or ""),
        ("pty", "yes" if job.pty else "no"),
        ("stdin", "open" if job.stdin else "closed"),
        ("labels", " ".join(f"{k}={v}" for k, v in sorted(job.labels.items()))),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("elapsed", human_duration(elapsed(job))),
        ("timeout", "" if job.timeout is None else f"{job.timeout:g}s"),
        ("exit code", "" if job.exit_code is None else str(job.exit_code)),
        ("signal", job.signal or ""),
        ("reason", job.reason or ""),
        ("pid", "" if job.pid is None else str(job.pid)),
        ("stdout", f"{job.stdout_bytes} bytes"),
        ("stderr", f"{job.stderr_bytes} bytes"),
        ("dropped", f"{job.dropped_bytes} bytes" if job.dropped_bytes else ""),
        ("events", str(job.last_seq)),
    ]
    return [(key, value) for key, value in fields if value]


def _print_fields(fields: list[tuple[str, Text | str]], *, justify: JustifyMethod = "left") -> None:
    """`key: value` lines in a pipe; an aligned grid, keys in bold, on a terminal."""
    if not is_tty():
        for key, value in fields:
            click.echo(f"{key}: {value}")
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify=justify)
    for key, value in fields:
        grid.add_row(key, value)
    _console().print(grid)


def print_job(job: Job) -> None:
    """A job's details, with the status in colour on a terminal."""
    _print_fields(
        [
            (key, Text(value, STATUS_COLOURS[job.status]) if key == "status" else value)
            for key, value in _job_fields(job)
        ]
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", str(value)))
    return out


def print_mapping(data: Mapping[str, Any]) -> None:
    """Nested figures (`/status`, `/stats`) as `a.b: value` lines, aligned on a terminal."""
    _print_fields(list(_flatten(data)), justify="right")


def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _summary(ev: Event) -> str:
    data = ev.data
    if ev.type is EventType.STATUS:
        return str(data.get("status", ""))
    if ev.type is EventType.COMMAND:
        argv = data.get("argv")
        return shlex.join(argv) if isinstance(argv, list) else str(data.get("command", ""))
    if ev.type is EventType.COMPLETE:
        parts = [str(data.get("status", ""))]
        if data.get("exit_code") is not None:
            parts.append(f"exit {data['exit_code']}")
        if data.get("signal"):
            parts.append(str(data["signal"]))
        if data.get("duration") is not None:
            parts.append(human_duration(float(data["duration"])))
        return " ".join(parts)
    if ev.raw is not None:
        return ev.raw.decode("utf-8", "replace").rstrip("\n")
    return str(data.get("message") or orjson.dumps(data).decode())


def event_line(ev: Event) -> str:
    """One line for `jobcast watch`: time, job, event type, what happened."""
    clock = datetime.fromtimestamp(ev.ts).strftime("%H:%M:%S")
    summary = _summary(ev).replace("\n", "\\n")
    if not is_tty():
        return f"{clock}\t{ev.job}\t{ev.type.value}\t{summary}"
    kind = click.style(f"{ev.type.value:<8}", fg="red" if ev.type is EventType.STDERR else "blue")
    if ev.type in (EventType.STATUS, EventType.COMPLETE):
        summary = click.style(summary, fg=STATUS_COLOURS.get(str(ev.data.get("status"))))
    return f"{click.style(clock, dim=True)} {click.style(ev.job, bold=True)} {kind} {summary}"
