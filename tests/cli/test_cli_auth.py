"""The command line and a token-protected server: it finds the local server's token by itself,
and says where it looked when it is refused; `auth = none` only on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ServerProcess, free_port

TIMEOUT = 60


def jobcast(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    return subprocess.run(
        [sys.executable, "-m", "jobcast", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_the_cli_finds_the_token_of_the_server_beside_it(
    server_factory: type[ServerProcess], tmp_path: Path
):
    here = tmp_path / "project"
    here.mkdir()
    # `jobcast serve` run here keeps its data in ./.jobcast: so does this one
    srv = server_factory(here / ".jobcast").start()
    assert srv.token is not None
    listed = jobcast("--url", srv.url, "run", "--", "echo", "hi", cwd=here)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "hi\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_env = jobcast("--url", srv.url, "ls", cwd=elsewhere, JOBCAST_DATA_DIR=str(here / ".jobcast"))
    assert by_env.returncode == 0, by_env.stderr
    given = jobcast("--url", srv.url, "--token", srv.token, "ls", cwd=elsewhere)
    assert given.returncode == 0, given.stderr
    by_token = jobcast("--url", srv.url, "ls", cwd=elsewhere, JOBCAST_TOKEN=srv.token)
    assert by_token.returncode == 0, by_token.stderr


def test_a_refused_cli_says_where_it_looked_for_a_token(
    server_factory: type[ServerProcess], tmp_path: Path
):
    srv = server_factory(tmp_path / "data").start()
    none = jobcast("--url", srv.url, "ls", cwd=tmp_path)
    assert none.returncode == 2
    assert none.stderr == (
        f"jobcast: the server at {srv.url} needs a token, and none was found; a token is taken "
        "from --token, then JOBCAST_TOKEN, then .jobcast/token (the server's data dir: "
        "JOBCAST_DATA_DIR, else ./.jobcast)\n"
    )
    wrong = jobcast("--url", srv.url, "follow", "x", cwd=tmp_path, JOBCAST_TOKEN="nope")
    assert wrong.returncode == 2
    assert wrong.stderr.startswith(
        f"jobcast: the server at {srv.url} refused the token (the token is not valid); "
    )
    assert wrong.stderr.count("\n") == 1
    assert "nope" not in wrong.stderr


def test_auth_none_is_refused_off_loopback(tmp_path: Path):
    done = jobcast(
        "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", "d",
        cwd=tmp_path, JOBCAST_AUTH="none",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("jobcast serve: auth = 'none' is refused on --host '0.0.0.0'")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()  # refused before anything was made


def test_auth_none_on_loopback_asks_nobody(server_factory: type[ServerProcess], tmp_path: Path):
    srv = server_factory(tmp_path / "data", env={"JOBCAST_AUTH": "none"}).start()
    assert srv.token is None and not (tmp_path / "data" / "token").exists()
    assert "auth none: no token asked" in srv.output()
    with httpx.Client(base_url=srv.url, timeout=30) as api:
        assert api.post("/jobs", json={"argv": ["true"]}).status_code == 201
        assert api.get("/jobs").status_code == 200
