"""What the CLI prints, without a server: exit codes, durations, plain and rich output."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from click.testing import CliRunner

from jobcast.cli import main, render
from jobcast.models import Event, EventType, Job, JobStatus


def job(**fields: Any) -> Job:
    base = {
        "id": "01abc",
        "status": "succeeded",
        "argv": ["sh", "-c", "echo hi"],
        "created_at": 100.0,
    }
    return Job.model_validate({**base, **fields})


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
    assert capsys.readouterr().out == "01abc\tbuild\tsucceeded\tsh -c 'echo hi'\t1.0s\t0\n"


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
    assert not any(line.startswith("signal") for line in out)


def test_mappings_are_flattened(capsys):
    render.print_mapping({"version": "1", "jobs": {"running": 2}})
    assert capsys.readouterr().out == "version: 1\njobs.running: 2\n"


def test_event_lines():
    output = Event(seq=3, job="01abc", type=EventType.STDOUT, ts=0.0, data={}, raw=b"hi\nthere\n")
    assert render.event_line(output).split("\t")[1:] == ["01abc", "stdout", "hi\\nthere"]
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
