"""Shell completion: the scripts, and job names and ids asked of a live server as click's
scripts ask for them (the `_JOBCAST_COMPLETE` protocol)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobcast.client import Client
from tests.conftest import free_port

from .test_cli_jobs import TIMEOUT


def complete(
    words: str, *, shell: str = "bash", url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """What `jobcast` offers for the command line `words` (the cursor at its end)."""
    env = {**os.environ, "_JOBCAST_COMPLETE": f"{shell}_complete", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    if url is not None:
        env["JOBCAST_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "jobcast"], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def offered(done: subprocess.CompletedProcess[str]) -> list[str]:
    # bash_complete answers a `type,value` line per item
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "_JOBCAST_COMPLETE=bash_complete"), ("zsh", "compdef"), ("fish", "complete")],
)
def test_completion_prints_the_script(shell, marker):
    done = subprocess.run(
        [sys.executable, "-m", "jobcast", "completion", shell], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout
    assert "jobcast" in done.stdout


def test_job_arguments_complete_with_names_and_ids_from_the_server(server):
    with Client(server.url) as client:
        named = client.run("sleep 30", name="builder")
        plain = client.run(["true"])
    try:
        everything = offered(complete("jobcast show ", url=server.url))
        assert everything[0] == "builder"  # names first, then ids
        assert {named.id, plain.id} <= set(everything)
        assert offered(complete("jobcast cancel bu", url=server.url)) == ["builder"]
        assert offered(complete(f"jobcast logs {plain.id[:-1]}", url=server.url)) == [plain.id]
        # --url on the command line is used too, though the group's callback does not run
        assert plain.id in offered(complete(f"jobcast --url {server.url} follow "))
        # commands still complete as click does
        assert "completion" in offered(complete("jobcast comp"))
        zsh = complete("jobcast show bu", shell="zsh", url=server.url).stdout.splitlines()
        assert "builder" in zsh
    finally:
        with Client(server.url) as client:
            client.cancel(named.id)


def test_no_server_no_completion_and_no_noise():
    done = complete("jobcast show ", url=f"http://127.0.0.1:{free_port()}")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "", "")
