"""`jobcast run` draws a progress bar on a terminal (a real tmux pane, read with capture-pane) and
none in a pipe."""

from __future__ import annotations

import shlex
import subprocess
import sys
import uuid

import pytest

from jobcast.cli.progress import render
from tests.cli.test_cli_jobs import jobcast_cmd
from tests.helpers import wait_for

# Progress, then output below it, then a pause at 42% that the pane is read in.
SCRIPT = (
    "import sys, time\n"
    "print('starting', flush=True)\n"
    "print('::progress 10 fetching::', flush=True)\n"
    "time.sleep(0.5)\n"
    "print('::progress 42 building wheel::', flush=True)\n"
    "time.sleep(30)\n"
)


def test_render_shows_percent_count_and_message():
    text = render({"percent": 30.0, "current": 3, "total": 10, "message": "copying"}, 80)
    assert "━" in text and "30.0%" in text and "3/10" in text and text.endswith("copying")


@pytest.fixture
def tmux():
    socket = f"jobcast-test-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    yield run
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)


def test_run_in_a_terminal_shows_a_bar(server, tmux):
    cmd = jobcast_cmd(server.url, "run", "--", sys.executable, "-c", SCRIPT)
    env = f"JOBCAST_TOKEN={shlex.quote(server.token or '')} JOBCAST_DATA_DIR={server.data_dir}"
    tmux("new-session", "-d", "-x", "100", "-y", "20", f"env {env} {shlex.join(cmd)}")

    def pane() -> str | None:
        text = tmux("capture-pane", "-p")
        return text if "42.0%" in text else None

    text = wait_for(pane, timeout=30)
    bar_line = next(line for line in text.splitlines() if "42.0%" in line)
    assert "━" in bar_line and bar_line.rstrip().endswith("building wheel")
    # The earlier bar was cleared, not left behind; the output stays above the bar.
    assert "10.0%" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines.index("starting") < lines.index(bar_line)


def test_run_in_a_pipe_shows_no_bar(server):
    script = "print('::progress 42 building wheel::')\nprint('done')\n"
    done = subprocess.run(
        jobcast_cmd(server.url, "run", "--", sys.executable, "-c", script),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"::progress 42 building wheel::\ndone\n"
    assert b"\x1b" not in done.stderr and "━".encode() not in done.stderr
