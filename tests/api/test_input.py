"""Bad input is refused at the door with the field named; HEAD never streams; errors are JSON."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import wait_job

BAD_CURSORS = ["-1", str(2**63), "٣", "1_0", "+3"]


@pytest.fixture
def done(api):
    job = api.post("/jobs", json={"command": "printf 0123456789"}).json()
    return wait_job(api, job["id"])


@pytest.mark.parametrize("bad", BAD_CURSORS)
def test_cursors_are_ascii_digits_below_2_63_in_header_and_query(api, done, bad):
    url = f"/jobs/{done['id']}/events"
    for r in (
        api.get(url, params={"after": bad}),
        api.get(url, headers={"Last-Event-ID": bad.encode()}),
        api.get("/stream", params={"after": bad}),
        api.get(f"/jobs/{done['id']}/log", params={"offset": bad}),
        api.get("/jobs", params={"limit": bad}),
        api.get(f"/jobs/{done['id']}/ws", params={"after": bad}),
    ):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "bad_request"


def test_empty_last_event_id_means_none(api, done):
    r = api.get(f"/jobs/{done['id']}/events", headers={"Last-Event-ID": ""})
    assert r.status_code == 200 and b"complete" in r.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "echo a\x00b"}, "command"),
        ({"argv": ["echo", "a\x00"]}, "argv.1"),
        ({"argv": ["true"], "cwd": "/\x00"}, "cwd"),
        ({"argv": ["true"], "env": {"A=B": "x"}}, "env"),
        ({"argv": ["true"], "env": {"": "x"}}, "env"),
        ({"argv": ["true"], "env": {"A": "\x00"}}, "env.A"),
        ({"argv": ["true"], "pty": "yes"}, "pty"),
        ({"command": "x" * 200_000}, "command"),
        ({"argv": ["x" * 100_000] * 30}, "ARG_MAX"),
    ],
)
def test_bad_specs_are_422_naming_the_field(api, body, field):
    r = api.post("/jobs", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]
    assert api.get("/jobs").json()["jobs"] == []


def test_absurd_body_is_413(api):
    body = b'{"command": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    r = api.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_signal_true_is_not_sighup(api):
    job = api.post("/jobs", json={"command": "sleep 30"}).json()
    r = api.post(f"/jobs/{job['id']}/signal", json={"signal": True})
    assert r.status_code == 422
    api.post(f"/jobs/{job['id']}/cancel")


def test_range_and_offset_past_the_end_are_416_with_the_size(api, done):
    url = f"/jobs/{done['id']}/log"
    for r in (
        api.get(url, headers={"Range": "bytes=99-"}),
        api.get(url, params={"offset": 50}),
        api.get(url, params={"offset": 50, "follow": 1}),
    ):
        assert r.status_code == 416, r.text
        assert r.headers["Content-Range"] == "bytes */10"
        assert r.json()["error"]["code"] == "range_not_satisfiable"
    assert api.get(url, params={"offset": 10}).content == b""


def test_head_never_streams(api, server):
    job = api.post("/jobs", json={"command": "sleep 30"}).json()
    base = f"{server.url}/jobs/{job['id']}"
    for path in ("/log", "/log?follow=1", "/events", "/ws"):
        r = httpx.head(base + path, headers=server.headers, timeout=3)
        assert r.status_code in (200, 405) and r.content == b""
    assert httpx.head(f"{server.url}/stream", headers=server.headers, timeout=3).status_code == 405
    api.post(f"/jobs/{job['id']}/cancel")


def test_refused_websocket_upgrade_is_the_json_shape(api, done):
    r = api.get(f"/jobs/{done['id']}/ws")
    assert r.status_code == 400
    assert "WebSocket" in r.json()["error"]["message"]
    assert api.get("/jobs/nope/ws").json()["error"]["code"] == "job_not_found"


def test_b64_with_non_ascii_characters_is_a_400(api):
    # Found by schemathesis (tests/api/test_openapi.py): b64decode raised ValueError, a 500.
    job = api.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
    r = api.post(f"/jobs/{job['id']}/input", json={"b64": "Ü÷QUJD"})
    assert r.status_code == 400 and "b64" in r.json()["error"]["message"]
    api.post(f"/jobs/{job['id']}/cancel")
