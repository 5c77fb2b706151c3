"""Where the clients find the server's token: argument, JOBCAST_TOKEN, then the local data dir
(for a loopback URL only); and a refused client raises `Unauthorized`."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobcast.client import Client
from jobcast.client.endpoint import resolve_token
from jobcast.errors import Unauthorized
from tests.conftest import ServerProcess


def test_the_token_file_is_read_for_a_loopback_server_only(tmp_path: Path, monkeypatch):
    (tmp_path / "token").write_text("from-the-file\n")
    monkeypatch.setenv("JOBCAST_DATA_DIR", str(tmp_path))
    assert resolve_token(None, "http://127.0.0.1:8080") == "from-the-file"
    assert resolve_token(None, "http://localhost:9000") == "from-the-file"
    assert resolve_token(None, "http://[::1]:9000") == "from-the-file"
    # never sent to another host, even one of this machine's names
    assert resolve_token(None, "https://ci.example:8080") is None
    assert resolve_token(None, "http://10.0.0.1:8080") is None
    monkeypatch.setenv("JOBCAST_TOKEN", "from-env")
    assert resolve_token(None, "http://127.0.0.1:8080") == "from-env"
    assert resolve_token("given", "http://127.0.0.1:8080") == "given"
    monkeypatch.delenv("JOBCAST_TOKEN")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOBCAST_DATA_DIR")
    assert resolve_token(None, "http://127.0.0.1:8080") is None  # ./.jobcast has none
    (tmp_path / ".jobcast").mkdir()
    (tmp_path / ".jobcast" / "token").write_text("beside\n")
    assert resolve_token(None, "http://127.0.0.1:8080") == "beside"


def test_the_client_finds_the_local_token_and_a_wrong_one_is_unauthorized(
    server: ServerProcess,
):
    # the server fixture set JOBCAST_DATA_DIR, as beside a local server
    with Client(server.url) as client:
        assert client.jobs().jobs == []
    with Client(server.url, token="wrong") as client, pytest.raises(Unauthorized) as e:
        client.jobs()
    assert e.value.status == 401 and "not valid" in e.value.message


def test_a_socket_closed_for_want_of_a_token_raises_unauthorized(
    server: ServerProcess, monkeypatch
):
    with Client(server.url) as client:
        job = client.run("echo hi")
    monkeypatch.delenv("JOBCAST_DATA_DIR")  # no token to be found: the socket is closed 4401
    with Client(server.url) as client, client.connect(job.id) as ws:
        with pytest.raises(Unauthorized) as e:
            list(ws.events())
    assert '"type": "auth"' in e.value.message
