"""The command line's light client against a real server: the same answers, as JSON, and the
same errors, with the same messages, as `Client`."""

from __future__ import annotations

import socket

import pytest

from jobcast.client import Client
from jobcast.client.plain import PlainClient
from jobcast.errors import ConnectionFailed, JobNotFound, ValidationFailed
from tests.conftest import free_port
from tests.helpers import wait_for


def test_answers_are_the_servers_json(server):
    with Client(server.url) as client:
        job = client.wait(client.run(["echo", "hi"], name="hello").id)
        listed = client.jobs().model_dump(mode="json")
    with PlainClient(server.url) as plain:
        assert plain.get(f"/jobs/{job.id}") == job.model_dump(mode="json")
        assert plain.get("/jobs") == listed
        assert plain.get("/jobs", [("name", "nobody")])["jobs"] == []


def test_errors_are_the_clients_errors(server):
    with PlainClient(server.url) as plain, pytest.raises(JobNotFound) as plain_err:
        plain.get("/jobs/nope")
    with Client(server.url) as client, pytest.raises(JobNotFound) as client_err:
        client.job("nope")
    assert plain_err.value.message == client_err.value.message
    assert plain_err.value.status == 404
    with PlainClient(server.url) as plain, pytest.raises(ValidationFailed):
        plain.post("/jobs", {"command": "true", "name": "9 lives"})


def test_an_unreachable_server_reads_as_clients_does():
    url = f"http://127.0.0.1:{free_port()}"
    with PlainClient(url) as plain, pytest.raises(ConnectionFailed) as plain_err:
        plain.get("/status")
    with Client(url) as client, pytest.raises(ConnectionFailed) as client_err:
        client.status()
    assert plain_err.value.message == client_err.value.message


def test_a_server_that_does_not_answer_times_out():
    with socket.socket() as listener:  # the kernel completes the connection; nobody answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with PlainClient(url, timeout=0.2) as plain, pytest.raises(ConnectionFailed) as err:
            plain.get("/status")
    assert "did not answer in time" in err.value.message


def test_a_slow_answer_is_announced_then_awaited(server_factory, data_dir):
    srv = server_factory(data_dir, extra=["--kill-grace-seconds", "2"]).start()
    calls: list[str] = []
    with PlainClient(srv.url, timeout=1.0) as plain:
        job = plain.post("/jobs", {"command": "trap '' TERM; echo ready; sleep 30"})
        wait_for(lambda: plain.get(f"/jobs/{job['id']}")["stdout_bytes"] > 0)
        # the cancel waits out the grace (2 s), longer than the timeout (1 s): announced, then
        # answered
        done = plain.request(
            "POST", f"/jobs/{job['id']}/cancel", slow=(0.3, lambda: calls.append("slow"))
        )
        assert done["status"] == "cancelled"
        assert calls == ["slow"]
        # a quick answer is not announced
        plain.request("GET", "/status", slow=(5.0, lambda: calls.append("again")))
        assert calls == ["slow"]
