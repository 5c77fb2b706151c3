"""The `jobcast` command line, run as a real subprocess against a real server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from jobcast.client import Client
from jobcast.models import JobStatus
from tests.client.proxy import CuttingProxy
from tests.conftest import free_port
from tests.helpers import wait_for

TIMEOUT = 60


def jobcast_cmd(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobcast", "--url", url, *args]


def jobcast(url: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        jobcast_cmd(url, *args), input=input, capture_output=True, timeout=TIMEOUT
    )


def start(url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(jobcast_cmd(url, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_line(proc: subprocess.Popen[bytes], line: bytes) -> None:
    """Read the process's stdout up to `line` (the test's timeout bounds the wait)."""
    assert proc.stdout is not None
    while (got := proc.stdout.readline()) != line:
        assert got, f"stdout ended before {line!r}"


def test_run_splits_streams_and_exits_with_the_jobs_code(server):
    done = jobcast(server.url, "run", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3
    assert done.stdout == b"out\n"
    assert done.stderr == b"err\n"


def test_run_a_shell_string_and_binary_output(server):
    done = jobcast(server.url, "run", "printf '\\377\\000x'")
    assert done.returncode == 0
    assert done.stdout == b"\xff\x00x"


def test_pty(server):
    done = jobcast(
        server.url, "run", "--pty", "--", "sh", "-c", "test -t 1 && echo tty; echo err >&2"
    )
    assert done.returncode == 0
    assert done.stdout.replace(b"\r\n", b"\n") == b"tty\nerr\n"


def test_a_signal_gives_128_plus_its_number(server):
    done = jobcast(server.url, "run", "kill -TERM $$")
    assert done.returncode == 128 + signal.SIGTERM


def test_detach_show_ls_follow_logs(server):
    started = jobcast(
        server.url,
        "run",
        "--detach",
        "--name",
        "twice",
        "-l",
        "k=v",
        "--",
        "sh",
        "-c",
        "echo one; echo two >&2; exit 4",
    )
    assert started.returncode == 0
    job_id = started.stdout.decode().strip()
    assert job_id and "\n" not in job_id

    followed = jobcast(server.url, "follow", "twice")
    assert (followed.returncode, followed.stdout, followed.stderr) == (4, b"one\n", b"two\n")

    shown = jobcast(server.url, "show", job_id)
    assert shown.returncode == 0
    assert b"status: failed" in shown.stdout
    assert b"exit code: 4" in shown.stdout
    as_json = json.loads(jobcast(server.url, "show", "--json", "twice").stdout)
    assert as_json["id"] == job_id
    assert as_json["labels"] == {"k": "v"}

    listed = jobcast(server.url, "ls")
    assert listed.returncode == 0
    row = listed.stdout.decode().splitlines()[0].split("\t")
    assert row[:3] == [job_id, "twice", "failed"]
    # the exit code says why it failed: no reason beside it
    assert row[5:] == ["4", ""]
    filtered = json.loads(
        jobcast(server.url, "ls", "--json", "--label", "k=v", "--status", "failed").stdout
    )
    assert [j["id"] for j in filtered["jobs"]] == [job_id]

    assert jobcast(server.url, "logs", job_id).stdout in (b"one\ntwo\n", b"two\none\n")
    assert jobcast(server.url, "logs", "--stream", "stderr", job_id).stdout == b"two\n"


def test_run_resumes_across_cut_connections(server):
    # paced, so that each event fits in what one connection lets through
    script = (
        "i=1; while [ $i -le 200 ]; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.005; "
        "done; exit 9"
    )
    with CuttingProxy(server.url, cut_after=1500) as proxy:
        done = jobcast(proxy.url, "run", script)
        assert proxy.cuts >= 3
    assert done.returncode == 9
    assert done.stdout == b"".join(b"line %d\n" % n for n in range(1, 201))
    assert done.stderr == b"".join(b"err %d\n" % n for n in range(1, 201))


def test_logs_follow(server):
    job_id = (
        jobcast(server.url, "run", "-d", "for i in 1 2 3; do echo $i; sleep 0.2; done")
        .stdout.decode()
        .strip()
    )
    done = jobcast(server.url, "logs", "-f", job_id)
    assert (done.returncode, done.stdout) == (0, b"1\n2\n3\n")


def test_stdin_is_forwarded(server):
    done = jobcast(server.url, "run", "--stdin", "--", "cat", "-n", input=b"a\nb\n")
    assert done.returncode == 0
    assert done.stdout.split() == [b"1", b"a", b"2", b"b"]


def test_send_signal_cancel(server):
    job_id = jobcast(server.url, "run", "-d", "-i", "read x; echo got $x").stdout.decode().strip()
    assert jobcast(server.url, "send", job_id, "hello").returncode == 0
    assert jobcast(server.url, "follow", job_id).stdout == b"got hello\n"

    sleeper = jobcast(server.url, "run", "-d", "sleep 30").stdout.decode().strip()
    with Client(server.url) as client:  # a signal needs a process: the job may still be queued
        wait_for(lambda: client.job(sleeper).status is JobStatus.RUNNING)
    sent = jobcast(server.url, "signal", sleeper, "TERM")
    assert sent.returncode == 0
    assert b"SIGTERM" in sent.stdout
    assert jobcast(server.url, "follow", sleeper).returncode == 128 + signal.SIGTERM

    sleeper = jobcast(server.url, "run", "-d", "sleep 30").stdout.decode().strip()
    said = jobcast(server.url, "cancel", sleeper).stdout.decode()
    assert said.startswith(f"job {sleeper} was cancelled"), said
    jobcast(server.url, "follow", sleeper)
    assert (
        json.loads(jobcast(server.url, "show", "--json", sleeper).stdout)["status"] == "cancelled"
    )


def test_ctrl_c_interrupts_the_job_and_shows_its_end(server):
    proc = start(
        server.url,
        "run",
        "trap 'echo caught; exit 5' INT; echo ready; while :; do sleep 0.05; done",
    )
    wait_for_line(proc, b"ready\n")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert out == b"caught\n"
    assert proc.returncode == 5


def test_second_ctrl_c_detaches(server):
    proc = start(
        server.url, "run", "trap 'echo not yet' INT; echo ready; while :; do sleep 0.05; done"
    )
    wait_for_line(proc, b"ready\n")
    proc.send_signal(signal.SIGINT)
    wait_for_line(proc, b"not yet\n")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130
    assert b"jobcast follow" in err
    ls = json.loads(jobcast(server.url, "ls", "--json", "--status", "running").stdout)
    for job in ls["jobs"]:
        jobcast(server.url, "cancel", job["id"])


def test_watch_prints_lifecycle_lines(server):
    proc = start(server.url, "watch")
    assert proc.stdout is not None
    try:
        # watch shows what happens from the moment it is connected on
        with Client(server.url) as client:
            wait_for(lambda: client.stats()["clients"]["stream"] >= 1)
        started = jobcast(server.url, "run", "-d", "--name", "napper", "sleep 0.2")
        job_id = started.stdout.decode().strip()
        while True:
            fields = proc.stdout.readline().decode().rstrip("\n").split("\t")
            assert len(fields) == 5, fields
            if fields[1] == job_id and fields[3] == "complete":
                assert fields[2] == "napper"  # its name, looked up once
                assert fields[4].startswith("succeeded")
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130


def test_status_and_stats(server):
    status = json.loads(jobcast(server.url, "status", "--json").stdout)
    assert status["version"]
    plain = jobcast(server.url, "status").stdout.decode()
    assert "jobs.running: " in plain
    stats = json.loads(jobcast(server.url, "stats", "--json").stdout)
    assert "clients" in stats


def test_errors_are_one_clear_line_and_exit_2(server):
    missing = jobcast(server.url, "show", "nope")
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith("jobcast: no job with id or name 'nope'")
    url = f"http://127.0.0.1:{free_port()}"
    down = jobcast(url, "run", "--", "true")
    assert down.returncode == 2
    assert down.stderr.decode() == (
        f"jobcast: cannot reach the jobcast server at {url}: start it with `jobcast serve` "
        "or set JOBCAST_URL\n"
    )


def test_ls_kind_lists_jobs_or_sources(server_factory, data_dir, tmp_path):
    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "INFRA.typescript").write_bytes(b"tailed\n")
    srv = server_factory(data_dir, extra=["--watch", f"{streams}/*.typescript"]).start()
    with Client(srv.url) as client:  # the source first: the listing is newest first
        wait_for(lambda: client.jobs(name="INFRA").jobs)
    job_id = jobcast(srv.url, "run", "-d", "--name", "plain", "--", "true").stdout.decode().strip()

    def listed(*args: str) -> list[tuple[str, str]]:
        done = jobcast(srv.url, "ls", "--json", *args)
        assert done.returncode == 0, done.stderr
        return [(j["name"], j["kind"]) for j in json.loads(done.stdout)["jobs"]]

    assert listed() == [("plain", "job"), ("INFRA", "source")]
    assert listed("--kind", "source") == [("INFRA", "source")]
    assert listed("--kind", "job") == [("plain", "job")]
    rows = jobcast(srv.url, "ls", "--kind", "job").stdout.decode().splitlines()
    assert [r.split("\t")[0] for r in rows] == [job_id]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "-e", "novalue", "--", "true"],
        ["run"],
        ["ls", "--status", "bogus"],
        ["ls", "--kind", "file"],
    ],
)
def test_usage_errors(args):
    done = jobcast("http://127.0.0.1:1", *args)
    assert done.returncode == 2
    assert b"Usage:" in done.stderr


def test_cancel_says_it_waits_for_a_job_that_ignores_sigterm(server_factory, data_dir):
    srv = server_factory(data_dir, extra=["--kill-grace-seconds", "2"]).start()
    job_id = jobcast(srv.url, "run", "-d", "trap '' TERM; echo ready; sleep 30").stdout.decode()
    job_id = job_id.strip()
    with Client(srv.url) as client:  # the trap is set once it has printed
        wait_for(lambda: client.job(job_id).stdout_bytes > 0)
    done = jobcast(srv.url, "cancel", job_id)
    assert done.returncode == 0
    assert "waiting for the server's grace period" in done.stderr.decode()
    assert done.stdout.decode() == (
        f"job {job_id} was cancelled: it did not end on SIGTERM, "
        "and was killed (SIGKILL) after the grace period\n"
    )
    again = jobcast(srv.url, "cancel", job_id)
    assert (
        again.stdout.decode()
        == f"job {job_id} had already finished (cancelled): nothing to cancel\n"
    )


def test_a_closing_line_on_a_terminal_for_a_timed_out_job(server):
    import os
    import pty

    main_fd, term = pty.openpty()
    try:
        done = subprocess.run(
            jobcast_cmd(server.url, "run", "--name", "slow", "--timeout", "0.5", "sleep 30"),
            stderr=term,
            stdout=subprocess.PIPE,
            timeout=TIMEOUT,
        )
        os.close(term)
        said = b""
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(main_fd)
    assert done.returncode == 124
    line = said.decode().strip()
    assert line.startswith("jobcast: job "), line
    assert "(slow) timed out after " in line
    assert "ran past its timeout of 0.5s" in line


def test_no_closing_line_in_a_pipe(server):
    done = jobcast(server.url, "run", "--timeout", "0.5", "sleep 30")
    assert (done.returncode, done.stderr) == (124, b"")


def test_validation_errors_say_what_a_name_may_contain(server):
    done = jobcast(server.url, "run", "--name", "my job", "true")
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "jobcast: invalid job: name: 'my job' is not a valid job name: a name starts with a "
        "letter and has at most 64 characters, each a letter (A-Z, a-z), a digit, `_`, `.` or "
        "`-`\n"
    )
