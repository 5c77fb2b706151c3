"""How the CLI shows things: tables, colours and human units (`1.2 MiB`, `4m05s`) when stdout is
a terminal, plain text (one record a line, tab-separated, raw numbers, no colour) when it is a
pipe, and JSON on request.

Jobs are the JSON mappings the server sends (as `Job.model_dump(mode="json")` gives them), so the
one-shot commands print without importing the models; rich is imported only to draw on a terminal.
"""

from __future__ import annotations

import shlex
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.text import Text

    from ..models import Event

__all__ = [
    "FINAL_STATUSES",
    "cancel_outcome",
    "closing_line",
    "command_line",
    "elapsed",
    "event_line",
    "exit_code_of",
    "human_bytes",
    "human_duration",
    "print_job",
    "print_jobs",
    "print_json",
    "print_mapping",
    "who",
]

#: colour names that rich and click both know
STATUS_COLOURS: dict[str, str] = {
    "queued": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "timed_out": "red",
    "lost": "bright_black",
}

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out", "lost"})

Job = Mapping[str, Any]


def is_tty() -> bool:
    return sys.stdout.isatty()


def _styled(text: str, status: str) -> Text:
    from rich.text import Text

    return Text(text, STATUS_COLOURS.get(status, ""))


def _print_rich(renderable: Any) -> None:
    from rich.console import Console

    Console(highlight=False, soft_wrap=False).print(renderable)


# -- units --------------------------------------------------------------------------------------


def human_duration(seconds: float | None) -> str:
    """`0.4s`, `12.3s`, `4m05s`, `2h03m`, `3d04h`; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def human_bytes(n: float) -> str:
    """`512 B`, `1.5 KiB`, `12.3 MiB`, `1.0 GiB` (powers of 1024)."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.1f} {unit}"


def human_count(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


# -- jobs ---------------------------------------------------------------------------------------


def command_line(job: Job) -> str:
    command = job.get("command")
    return str(command) if command is not None else shlex.join(job.get("argv") or [])


def elapsed(job: Job, now: float | None = None) -> float | None:
    """How long it ran, or has been running so far."""
    started = job.get("started_at")
    if started is None:
        return None
    finished = job.get("finished_at")
    end = finished if finished is not None else (now or time.time())
    return float(max(0.0, end - started))


def exit_code_of(job: Job) -> int:
    """The exit code a shell would show for the job, never 0 unless it succeeded:
    124 timed out (as timeout(1)), 255 lost, 128+N when signal N ended it, its own code,
    143 (128+SIGTERM) for a cancel that recorded no signal, else 1."""
    status = job.get("status")
    # status first: a timed-out job was ended by a signal, but timeout(1) says 124
    if status == "timed_out":
        return 124
    if status == "lost":
        return 255
    signum = _signal_number(job.get("signal"))
    if signum is not None:
        return 128 + signum
    code = job.get("exit_code")
    if code is not None:
        code = code if code >= 0 else 128 - code
        # a job that did not succeed must not look like success to a shell
        return int(code) if code or status == "succeeded" else 1
    if status == "succeeded":
        return 0
    return 143 if status == "cancelled" else 1


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
    if job.get("signal"):
        return str(job["signal"])
    return "" if job.get("exit_code") is None else str(job["exit_code"])


def _why(job: Job) -> str:
    """The reason worth a column in `ls`: why a job did not end the ordinary way."""
    status = job.get("status")
    if status in ("succeeded", "running", "queued"):
        return ""
    reason = str(job.get("reason") or "")
    if reason == f"exited with code {job.get('exit_code')}":
        return ""  # the exit column says it already
    return reason


def print_jobs(jobs: Iterable[Job]) -> None:
    """A table on a terminal; else one job a line: id, name, status, command, time, exit, reason."""
    now = time.time()
    rows = [
        (
            str(job["id"]),
            job.get("name") or "",
            str(job["status"]),
            command_line(job),
            human_duration(elapsed(job, now)),
            _exit_text(job),
            _why(job),
        )
        for job in jobs
    ]
    if not is_tty():
        for row in rows:
            click.echo("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in ("ID", "NAME", "STATUS", "COMMAND", "TIME", "EXIT"):
        table.add_column(title, overflow="ellipsis", no_wrap=True, max_width=60)
    if any(row[-1] for row in rows):
        table.add_column("REASON", overflow="ellipsis", no_wrap=True, max_width=60)
        width = 7
    else:
        width = 6
    for row in rows:
        ident, name, status, command, took, code = row[:6]
        cells = [ident, name, _styled(status, status), command, took, code, *row[6:width]]
        table.add_row(*cells)
    _print_rich(table)


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _size(n: int, human: bool) -> str:
    return f"{human_bytes(n)} ({n:,} bytes)" if human and n >= 1024 else f"{n} bytes"


def _job_fields(job: Job, human: bool) -> list[tuple[str, str]]:
    labels: Mapping[str, str] = job.get("labels") or {}
    timeout = job.get("timeout")
    dropped = int(job.get("dropped_bytes") or 0)
    fields = [
        ("id", str(job["id"])),
        ("name", job.get("name") or ""),
        ("status", str(job["status"])),
        ("command", command_line(job)),
        ("cwd", job.get("cwd") or ""),
        ("pty", "yes" if job.get("pty") else "no"),
        ("stdin", "open" if job.get("stdin") else "closed"),
        ("labels", " ".join(f"{k}={v}" for k, v in sorted(labels.items()))),
        ("created", _when(job.get("created_at"))),
        ("started", _when(job.get("started_at"))),
        ("finished", _when(job.get("finished_at"))),
        ("elapsed", human_duration(elapsed(job))),
        (
            "timeout",
            "" if timeout is None else (human_duration(timeout) if human else f"{timeout:g}s"),
        ),
        ("exit code", "" if job.get("exit_code") is None else str(job["exit_code"])),
        ("signal", job.get("signal") or ""),
        ("reason", job.get("reason") or ""),
        ("pid", "" if job.get("pid") is None else str(job["pid"])),
        ("stdout", _size(int(job.get("stdout_bytes") or 0), human)),
        ("stderr", _size(int(job.get("stderr_bytes") or 0), human)),
        ("dropped", _size(dropped, human) if dropped else ""),
        ("events", str(job.get("last_seq", 0))),
        ("progress", _progress_text(job.get("progress"))),
        *((f"extracted {k}", str(v)) for k, v in sorted((job.get("extracted") or {}).items())),
    ]
    return [(key, value) for key, value in fields if value]


def _progress_text(value: Mapping[str, Any] | None) -> str:
    if not value:
        return ""
    words = []
    if value.get("percent") is not None:
        words.append(f"{value['percent']:g}%")
    if value.get("current") is not None and value.get("total") is not None:
        words.append(f"{value['current']}/{value['total']}")
    for key in ("unit", "state", "message"):
        if value.get(key):
            words.append(str(value[key]))
    return " ".join(words)


def _print_fields(fields: list[tuple[str, Any]], *, justify: str = "left") -> None:
    """`key: value` lines in a pipe; an aligned grid, keys in bold, on a terminal."""
    if not is_tty():
        for key, value in fields:
            click.echo(f"{key}: {value}")
        return
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right" if justify == "right" else "left")
    for key, value in fields:
        grid.add_row(key, value)
    _print_rich(grid)


def print_job(job: Job) -> None:
    """A job's details, with the status in colour and sizes in units on a terminal."""
    tty = is_tty()
    status = str(job["status"])
    _print_fields(
        [
            (key, _styled(value, status) if tty and key == "status" else value)
            for key, value in _job_fields(job, tty)
        ]
    )


# -- server figures -----------------------------------------------------------------------------


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _human_figure(key: str, value: Any, uptime: float | None) -> str:
    """A figure of `/status` or `/stats` in the unit its name says, with its average rate over
    the server's uptime when it is a total (`bytes_sent`, `events_sent`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "uptime" or leaf.endswith("_seconds"):
        return human_duration(value)
    if key.startswith("loop_lag_ms.") or leaf.endswith("_ms"):
        return f"{value:g} ms"
    if "bytes" in leaf:
        text = human_bytes(value)
        if leaf.endswith("_sent") and uptime:
            text += f" ({human_bytes(value / uptime)}/s on average)"
        return text
    text = human_count(value)
    if leaf.endswith("_sent") and uptime:
        text += f" ({human_count(value / uptime)}/s on average)"
    return text


def print_mapping(data: Mapping[str, Any], *, uptime: float | None = None) -> None:
    """Nested figures (`/status`, `/stats`) as `a.b: value` lines: raw in a pipe; aligned, in
    units (durations, sizes, rates per second over `uptime`) on a terminal."""
    fields = _flatten(data)
    if is_tty():
        uptime = uptime if uptime is not None else data.get("uptime")
        fields = [(k, _human_figure(k, v, uptime)) for k, v in fields]
    _print_fields(fields, justify="right")


def print_json(data: Any) -> None:
    import orjson

    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


# -- events -------------------------------------------------------------------------------------


def _summary(ev: Event) -> str:
    data = ev.data
    kind = ev.type.value
    if kind == "status":
        return str(data.get("status", ""))
    if kind == "command":
        argv = data.get("argv")
        return shlex.join(argv) if isinstance(argv, list) else str(data.get("command", ""))
    if kind == "complete":
        parts = [str(data.get("status", ""))]
        if data.get("exit_code") is not None:
            parts.append(f"exit {data['exit_code']}")
        if data.get("signal"):
            parts.append(str(data["signal"]))
        if data.get("duration") is not None:
            parts.append(human_duration(float(data["duration"])))
        if data.get("reason") and data.get("status") not in ("succeeded", "failed"):
            parts.append(f"({data['reason']})")
        return " ".join(parts)
    if ev.raw is not None:
        return ev.raw.decode("utf-8", "replace").rstrip("\n")
    import orjson

    return str(data.get("message") or orjson.dumps(data).decode())


def event_line(ev: Event, name: str | None = None) -> str:
    """One line for `jobcast watch`: time, job id, job name, event type, what happened."""
    clock = datetime.fromtimestamp(ev.ts).strftime("%H:%M:%S")
    summary = _summary(ev).replace("\n", "\\n").replace("\t", " ")
    kind = ev.type.value
    if not is_tty():
        return f"{clock}\t{ev.job}\t{name or ''}\t{kind}\t{summary}"
    styled = click.style(f"{kind:<8}", fg="red" if kind == "stderr" else "blue")
    if kind in ("status", "complete"):
        summary = click.style(summary, fg=STATUS_COLOURS.get(str(ev.data.get("status"))))
    who = click.style(ev.job, bold=True) + (f" {click.style(name, fg='cyan')}" if name else "")
    return f"{click.style(clock, dim=True)} {who} {styled} {summary}"


def who(job: Job) -> str:
    """`job 01abc (build)`: its id, and its name when it has one."""
    return f"job {job['id']}" + (f" ({job['name']})" if job.get("name") else "")


def cancel_outcome(before: Job, after: Job) -> str:
    """What `jobcast cancel` did, from the job as it was before and as it is after."""
    if before["status"] in FINAL_STATUSES:
        return f"{who(after)} had already finished ({after['status']}): nothing to cancel"
    if after["status"] != "cancelled":
        return f"{who(after)} ended ({after['status']}) before the cancel reached it"
    if before["status"] == "queued" or after.get("started_at") is None:
        return f"{who(after)} was cancelled before it started"
    sig = str(after.get("signal") or "").upper().removeprefix("SIG")
    if sig == "KILL":
        return (
            f"{who(after)} was cancelled: it did not end on SIGTERM, "
            "and was killed (SIGKILL) after the grace period"
        )
    if sig:
        return f"{who(after)} was cancelled: SIG{sig} ended it"
    if after.get("exit_code") is not None:
        return f"{who(after)} was cancelled: it exited with code {after['exit_code']} on SIGTERM"
    return f"{who(after)} was cancelled"


def closing_line(job: Job) -> str | None:
    """What `run` and `follow` say on a terminal when the job did not simply exit: it timed out,
    was cancelled or was lost. None for an ordinary end (its own output and exit code say it)."""
    status = job.get("status")
    if status not in ("timed_out", "cancelled", "lost"):
        return None
    duration = job.get("duration")
    took = human_duration(duration if duration is not None else elapsed(job))
    how = {
        "timed_out": f"timed out after {took}" if took else "timed out",
        "cancelled": f"was cancelled after {took}" if took else "was cancelled before it started",
        "lost": "was lost",
    }[str(status)]
    details = [str(job["reason"])] if job.get("reason") else []
    if job.get("signal"):
        details.append(f"ended by {job['signal']}")
    return f"jobcast: {who(job)} {how}" + (f": {', '.join(details)}" if details else "")
