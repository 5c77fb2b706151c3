"""`jobcast run` and `follow` exit codes for each way a job ends, against a real server."""

from __future__ import annotations

import signal
import subprocess

from jobcast.client import Client
from jobcast.errors import JobNotFound
from jobcast.models import JobStatus
from tests.cli.test_cli_jobs import TIMEOUT, jobcast, start
from tests.helpers import wait_for


def _running(client: Client, name: str) -> bool:
    try:
        return client.job(name).status is JobStatus.RUNNING
    except JobNotFound:  # the CLI has not created it yet
        return False


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    _, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


def test_run_and_follow_exit_with_the_final_status(server):
    cases = {
        "own code": (["--", "sh", "-c", "exit 3"], 3),
        "success": (["true"], 0),
        "a signal": (["kill -KILL $$"], 128 + signal.SIGKILL),
        "timed out": (["--timeout", "0.5", "--", "sleep", "10"], 124),
    }
    # all at once: one server, and the CLI's start-up paid in parallel
    runs = {
        name: start(server.url, "run", "--name", name.replace(" ", "-"), *args)
        for name, (args, _) in cases.items()
    }
    expected = {name: code for name, (_, code) in cases.items()}
    assert {name: _finish(proc)[0] for name, proc in runs.items()} == expected
    follows = {name: start(server.url, "follow", name.replace(" ", "-")) for name in cases}
    assert {name: _finish(proc)[0] for name, proc in follows.items()} == expected


def test_ctrl_c_interrupts_the_job_and_exits_130(server):
    proc = start(server.url, "run", "--name", "interrupted", "--", "sleep", "60")
    with Client(server.url) as client:
        wait_for(lambda: _running(client, "interrupted"))
        proc.send_signal(signal.SIGINT)
        assert _finish(proc) == (130, b"")
        job = client.job("interrupted")
    # as if it ran here: SIGINT ended it, and the CLI saw it end
    assert (job.status, job.signal) == (JobStatus.FAILED, "SIGINT")
    assert jobcast(server.url, "follow", job.id).returncode == 130


def test_a_server_shutdown_ends_run_and_follow_with_the_jobs_code(server):
    run = start(server.url, "run", "--name", "ended", "--", "sleep", "60")
    with Client(server.url) as client:
        wait_for(lambda: _running(client, "ended"))
        follow = start(server.url, "follow", "ended")
        wait_for(lambda: client.stats()["clients"]["total"] == 2)
    assert server.stop() == 0
    # cancelled by the shutdown (SIGTERM), and known from the last event: not "cannot reach"
    assert _finish(run) == (128 + signal.SIGTERM, b"")
    assert _finish(follow) == (128 + signal.SIGTERM, b"")


def test_a_lost_job_exits_255(server_factory, data_dir):
    first = server_factory(data_dir).start()
    run = start(first.url, "run", "--name", "lost", "--", "sleep", "60")
    with Client(first.url) as client:
        wait_for(lambda: _running(client, "lost"))
        follow = start(first.url, "follow", "lost")
        wait_for(lambda: client.stats()["clients"]["total"] == 2)
    first.kill()
    # the same address again: both reconnect, and find the job lost by the new server's recovery
    server_factory(data_dir, port=first.port).start()
    assert _finish(run)[0] == 255
    assert _finish(follow)[0] == 255
    assert jobcast(first.url, "follow", "lost").returncode == 255
