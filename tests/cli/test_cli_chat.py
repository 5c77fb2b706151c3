"""`jobcast chat` and `jobcast direct` against a real server with a config file: the job's output
on stdout, its exit code as `jobcast run`'s, and errors (no chat template, an unknown template, a
bad argument) as one line on stderr with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.api.test_chat import start_server
from tests.cli.test_cli_jobs import jobcast
from tests.conftest import ServerProcess


@pytest.fixture
def cserver(server_factory: type[ServerProcess], data_dir: Path) -> ServerProcess:
    return start_server(server_factory, data_dir)


def test_chat_follows_the_job_and_exits_with_its_code(cserver):
    done = jobcast(cserver.url, "chat", "add", "tests; rm -rf ~")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"argv": ["add tests; rm -rf ~"], "context": []}
    failed = jobcast(cserver.url, "chat", "exit 3")
    assert failed.returncode == 3
    assert json.loads(failed.stdout)["argv"] == ["exit 3"]


def test_chat_with_context_and_detach(cserver):
    ref = jobcast(cserver.url, "paste", input=b"notes").stdout.decode().strip()
    done = jobcast(cserver.url, "chat", "-c", ref, "--", "-m", "look")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"argv": ["-m look"], "context": ["notes"]}
    detached = jobcast(cserver.url, "chat", "-d", "hi")
    assert detached.returncode == 0
    job = httpx.get(
        f"{cserver.url}/jobs/{detached.stdout.decode().strip()}", headers=cserver.headers
    ).json()
    assert job["argv"][-1] == "hi"


def test_direct_takes_one_command_line_or_its_words(cserver):
    one = jobcast(cserver.url, "direct", "test --fast 'a b'")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == ["--fast", "--n=1", "a b", "-"]
    words = jobcast(cserver.url, "direct", "test", "--n=2", "a b")
    assert json.loads(words.stdout) == ["--n=2", "a b", "-"]


def test_direct_errors_are_one_line_and_exit_2(cserver):
    unknown = jobcast(cserver.url, "direct", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.decode().startswith("jobcast: command: no template 'nope'")
    assert "templates: chat, test" in unknown.stderr.decode()
    bad = jobcast(cserver.url, "direct", "test --n=9")
    assert bad.returncode == 2 and b"args.n: must be at most 5" in bad.stderr
    assert bad.stdout == b""


def test_chat_without_a_chat_template_says_how_to_define_one(server):
    done = jobcast(server.url, "chat", "hi")
    assert done.returncode == 2
    assert b"[templates.chat]" in done.stderr
    assert httpx.get(f"{server.url}/jobs", headers=server.headers).json()["jobs"] == []
