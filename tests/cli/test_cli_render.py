"""What the CLI prints, without a server: exit codes, durations, plain and rich output."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from click.testing import CliRunner

from jobcast.cli import main, render
from jobcast.models import Event, EventType, Job, JobStatus


def job(**fields: Any) -> dict[str, Any]:
    """A job as the server sends it (the CLI prints the JSON, not models)."""
    base = {
        "id": "01abc",
        "status": "succeeded",
        "argv": ["sh", "-c", "echo hi"],
        "created_at": 100.0,
    }
    return Job.model_validate({**base, **fields}).model_dump(mode="json")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"exit_code": 0}, 0),
        ({"status": "failed", "exit_code": 3}, 3),
        ({"status": "failed", "exit_code": -9}, 128 + 9),
        ({"status": "cancelled", "signal": "SIGTERM"}, 128 + signal.SIGTERM),
        ({"status": "failed", "signal": "INT", "exit_code": None}, 128 + signal.SIGINT),
        ({"status": "lost"}, 255),
        ({"status": "lost", "signal": "KILL"}, 255),
        ({"status": "cancelled"}, 128 + signal.SIGTERM),
        ({"status": "timed_out", "signal": "TERM"}, 124),
        ({"status": "timed_out"}, 124),
        ({"status": "failed"}, 1),
        ({"status": "failed", "exit_code": 0}, 1),
    ],
)
def test_exit_code_of(fields, code):
    assert render.exit_code_of(job(**fields)) == code


def test_human_duration():
    assert render.human_duration(None) == ""
    assert render.human_duration(0.42) == "0.4s"
    assert render.human_duration(245) == "4m05s"
    assert render.human_duration(7380) == "2h03m"


def test_elapsed_of_running_and_finished_jobs():
    assert render.elapsed(job(started_at=100.0, finished_at=112.5)) == 12.5
    assert render.elapsed(job(status="running", started_at=100.0), now=130.0) == 30.0
    assert render.elapsed(job(status="queued")) is None


def test_plain_listing_is_tab_separated(capsys):
    render.print_jobs([job(name="build", exit_code=0, started_at=100.0, finished_at=101.0)])
    assert capsys.readouterr().out == "01abc\tbuild\tsucceeded\tsh -c 'echo hi'\t1.0s\t0\t\n"


def test_rich_listing_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(render, "is_tty", lambda: True)
    render.print_jobs([job(status="failed", exit_code=2, command="make test")])
    out = capsys.readouterr().out
    assert "STATUS" in out
    assert "failed" in out
    assert "make test" in out


def test_show_lists_only_what_is_known(capsys):
    render.print_job(job(exit_code=0, labels={"b": "2", "a": "1"}))
    out = capsys.readouterr().out.splitlines()
    assert "labels: a=1 b=2" in out
    assert "exit code: 0" in out
    assert not any(line.startswith(("signal", "progress", "extracted")) for line in out)


def test_show_gives_progress_and_extracted_values(capsys):
    progress = {"percent": 30.0, "current": 3, "total": 10, "message": "copying"}
    render.print_job(job(progress=progress, extracted={"version": "1.2", "passed": "41"}))
    out = capsys.readouterr().out.splitlines()
    assert "progress: 30% 3/10 copying" in out
    assert out[-2:] == ["extracted passed: 41", "extracted version: 1.2"]


def test_mappings_are_flattened(capsys):
    render.print_mapping({"version": "1", "jobs": {"running": 2}})
    assert capsys.readouterr().out == "version: 1\njobs.running: 2\n"


def test_event_lines():
    output = Event(seq=3, job="01abc", type=EventType.STDOUT, ts=0.0, data={}, raw=b"hi\nthere\n")
    assert render.event_line(output).split("\t")[1:] == ["01abc", "", "stdout", "hi\\nthere"]
    assert render.event_line(output, "build").split("\t")[1:3] == ["01abc", "build"]
    complete = Event(
        seq=4,
        job="01abc",
        type=EventType.COMPLETE,
        ts=0.0,
        data={"status": "failed", "exit_code": 1, "duration": 2},
    )
    assert render.event_line(complete).endswith("\tcomplete\tfailed exit 1 2.0s")
    status = Event(
        seq=1, job="01abc", type=EventType.STATUS, ts=0.0, data={"status": JobStatus.RUNNING.value}
    )
    assert render.event_line(status).endswith("\tstatus\trunning")


def test_help_explains_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in (
        "run",
        "follow",
        "logs",
        "ls",
        "show",
        "cancel",
        "send",
        "signal",
        "watch",
        "serve",
    ):
        assert f"  {command} " in result.output
    run_help = CliRunner().invoke(main, ["run", "--help"]).output
    assert "exit code" in run_help
    assert "--detach" in run_help


def test_human_units():
    assert render.human_duration(3 * 86400 + 4 * 3600 + 60) == "3d04h"
    assert render.human_bytes(0) == "0 B"
    assert render.human_bytes(1023) == "1023 B"
    assert render.human_bytes(1536) == "1.5 KiB"
    assert render.human_bytes(12.3 * 1024 * 1024) == "12.3 MiB"
    assert render.human_bytes(5 * 1024**4) == "5.0 TiB"
    assert render.human_bytes(3 * 1024**5) == "3072.0 TiB"


def test_ls_says_why_a_job_failed_to_start_or_was_lost(capsys):
    render.print_jobs(
        [
            job(status="failed", reason="could not start: no such file: nope"),
            job(status="lost", reason="the server stopped while it ran"),
            job(status="failed", exit_code=2, reason="exited with code 2"),
            job(status="failed", exit_code=127, reason="command not found: nope"),
        ]
    )
    reasons = [line.split("\t")[6] for line in capsys.readouterr().out.splitlines()]
    assert reasons == [
        "could not start: no such file: nope",
        "the server stopped while it ran",
        "",  # the exit code says it
        "command not found: nope",
    ]


def test_ls_on_a_terminal_has_a_reason_column_when_one_is_needed(capsys, monkeypatch):
    monkeypatch.setattr(render, "is_tty", lambda: True)
    render.print_jobs([job(status="lost", reason="server gone")])
    assert "REASON" in capsys.readouterr().out
    render.print_jobs([job()])
    assert "REASON" not in capsys.readouterr().out


def test_figures_in_units_on_a_terminal_raw_in_a_pipe(capsys, monkeypatch):
    figures = {
        "uptime": 7380.5,
        "bytes_sent": 10 * 1024 * 1024,
        "events_sent": 73805,
        "loop_lag_ms": {"p99": 4.5},
        "clients": {"total": 3},
    }
    render.print_mapping(figures)
    assert capsys.readouterr().out.splitlines() == [
        "uptime: 7380.5",
        "bytes_sent: 10485760",
        "events_sent: 73805",
        "loop_lag_ms.p99: 4.5",
        "clients.total: 3",
    ]
    monkeypatch.setattr(render, "is_tty", lambda: True)
    render.print_mapping(figures)
    out = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert out == [
        "uptime 2h03m",
        "bytes_sent 10.0 MiB (1.4 KiB/s on average)",
        "events_sent 73,805 (10/s on average)",
        "loop_lag_ms.p99 4.5 ms",
        "clients.total 3",
    ]


def test_show_gives_sizes_in_units_on_a_terminal(capsys, monkeypatch):
    big = job(stdout_bytes=3 * 1024 * 1024, stderr_bytes=10, timeout=90.0)
    render.print_job(big)
    out = capsys.readouterr().out
    assert "stdout: 3145728 bytes" in out
    assert "timeout: 90s" in out
    monkeypatch.setattr(render, "is_tty", lambda: True)
    render.print_job(big)
    out = capsys.readouterr().out
    assert "3.0 MiB (3,145,728 bytes)" in out
    assert "10 bytes" in out
    assert "1m30s" in out


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"exit_code": 0}, None),
        ({"status": "failed", "exit_code": 1}, None),
        (
            {"status": "timed_out", "signal": "SIGTERM", "duration": 5.0,
             "reason": "ran past its timeout of 5s"},
            "jobcast: job 01abc (b) timed out after 5.0s: ran past its timeout of 5s, "
            "ended by SIGTERM",
        ),
        (
            {"status": "cancelled", "reason": "cancelled by request"},
            "jobcast: job 01abc (b) was cancelled before it started: cancelled by request",
        ),
        (
            {"status": "lost", "reason": "the server stopped while it ran"},
            "jobcast: job 01abc (b) was lost: the server stopped while it ran",
        ),
    ],
)  # fmt: skip
def test_closing_line(fields, line):
    assert render.closing_line({**job(name="b"), **fields}) == line


def test_what_cancel_says():
    running = job(status="running", started_at=100.0)
    cancelled = job(status="cancelled", started_at=100.0, finished_at=101.0)
    killed = {**cancelled, "signal": "SIGKILL"}
    assert render.cancel_outcome(running, {**cancelled, "signal": "SIGTERM"}) == (
        "job 01abc was cancelled: SIGTERM ended it"
    )
    assert "did not end on SIGTERM" in render.cancel_outcome(running, killed)
    assert render.cancel_outcome(running, {**cancelled, "exit_code": 0}) == (
        "job 01abc was cancelled: it exited with code 0 on SIGTERM"
    )
    assert render.cancel_outcome(job(status="queued"), job(status="cancelled")) == (
        "job 01abc was cancelled before it started"
    )
    assert render.cancel_outcome(job(), job()) == (
        "job 01abc had already finished (succeeded): nothing to cancel"
    )
    assert render.cancel_outcome(running, job(exit_code=0)) == (
        "job 01abc ended (succeeded) before the cancel reached it"
    )


def test_ls_status_choices_are_the_job_statuses():
    from jobcast.cli.jobs import STATUSES

    assert set(STATUSES) == {s.value for s in JobStatus}
    assert render.FINAL_STATUSES == {s.value for s in JobStatus if s.is_final}


def test_ls_kind_choices_are_the_job_kinds():
    from jobcast.cli.jobs import KINDS
    from jobcast.models import JOB_KINDS

    assert KINDS == JOB_KINDS
