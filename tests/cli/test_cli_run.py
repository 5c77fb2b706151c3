"""`jobcast run` behaves like running the command here: directory, environment, exit codes, order."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jobcast.cli.jobs import _is_local, _job_command
from tests.cli.test_cli_jobs import TIMEOUT, jobcast, jobcast_cmd

MISSING = "no-such-program-jobcast"


def jobcast_in(
    cwd: Path, url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        jobcast_cmd(url, *args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize(
    ("words", "want"),
    [
        (("pwd",), ["pwd"]),
        (("./build.sh",), ["./build.sh"]),
        (("ls", "-l"), ["ls", "-l"]),
        (("echo a | wc -c",), "echo a | wc -c"),
        (("make test",), "make test"),
        (("$HOME/bin/x",), "$HOME/bin/x"),
        (("A=1",), "A=1"),  # an assignment, for the shell
        (("~/x",), "~/x"),
    ],
)
def test_one_word_with_shell_syntax_goes_to_the_shell(words, want):
    assert _job_command(words) == want


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080", True),
        ("127.0.0.2:9000", True),
        ("http://localhost:8080", True),
        ("http://[::1]:8080", True),
        ("https://build.example.com", False),
        ("http://10.0.0.5:8080", False),
    ],
)
def test_a_loopback_url_is_this_machine(url, local):
    assert _is_local(url) is local


def test_run_pwd_prints_this_directory(server, tmp_path):
    here = tmp_path / "work dir"
    here.mkdir()
    # As a shell names it ($PWD), then as the kernel does when $PWD is elsewhere.
    done = jobcast_in(here, server.url, "run", "--", "pwd", env={"PWD": str(here)})
    assert (done.returncode, done.stdout) == (0, f"{here}\n".encode())
    done = jobcast_in(here, server.url, "run", "pwd", env={"PWD": "/"})
    assert (done.returncode, done.stdout) == (0, f"{os.path.realpath(here)}\n".encode())
    done = jobcast_in(here, server.url, "run", "--cwd", "..", "--", "sh", "-c", 'echo "$PWD"')
    assert done.stdout == f"{os.path.realpath(tmp_path)}\n".encode()


def test_env_options(server_factory, data_dir, tmp_path):
    server = server_factory(data_dir, env={"ONLY_ON_SERVER": "s"}).start()
    script = 'echo "${ONLY_HERE-unset} ${ONLY_ON_SERVER-unset} ${A-unset} ${JOBCAST_X-unset}"'
    here = {"ONLY_HERE": "h", "JOBCAST_X": "secret"}
    done = jobcast_in(tmp_path, server.url, "run", "-e", "A=1", "--", "sh", "-c", script, env=here)
    assert done.stdout == b"unset s 1 unset\n"
    done = jobcast_in(
        tmp_path, server.url, "run", "--env-from-here", "-e", "A=2", "--", "sh", "-c", script,
        env=here,
    )  # fmt: skip
    assert done.stdout == b"h unset 2 unset\n"


@pytest.mark.parametrize(
    "command", [("--", MISSING, "--flag"), (f"{MISSING} --flag",)], ids=["argv", "shell"]
)
def test_a_missing_program_exits_127_saying_command_not_found(server, command):
    done = jobcast(server.url, "run", *command)
    assert done.returncode == 127
    assert f"jobcast: command not found: {MISSING}".encode() in done.stderr


@pytest.mark.parametrize("form", ["argv", "shell"])
@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_program_that_cannot_be_run_exits_126(server, tmp_path, form, what):
    path = tmp_path / "prog"
    if what == "file":
        path.write_text("#!/bin/sh\necho never\n")  # not executable
    else:
        path.mkdir()
    command = ("--", str(path), "x") if form == "argv" else (f"{path} x",)
    done = jobcast(server.url, "run", *command)
    assert done.returncode == 126
    assert f"jobcast: command not executable: {path} (".encode() in done.stderr
    assert b"never" not in done.stdout


def test_merge_stderr_keeps_the_exact_order(server):
    script = "for i in $(seq 1 300); do echo out$i; echo err$i >&2; done"
    done = jobcast(server.url, "run", "--merge-stderr", "--", "sh", "-c", script)
    assert done.returncode == 0
    assert done.stdout == b"".join(b"out%d\nerr%d\n" % (i, i) for i in range(1, 301))
    assert done.stderr == b""
