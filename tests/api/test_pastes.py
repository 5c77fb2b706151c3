"""POST /pastes and GET /pastes/{hash} on a real server; jobs get their context files."""

from __future__ import annotations

import hashlib
import socket

import pytest

from tests.conftest import wait_job

GOOD = hashlib.sha256(b"nothing stored").hexdigest()


def test_json_and_raw_bodies_round_trip_and_the_same_content_is_stored_once(api, server):
    text = "# notes\nnon-ascii: é ✓\n"
    r = api.post("/pastes", json={"text": text})
    assert r.status_code == 201, r.text
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert r.json() == {"ref": f"ctx://paste/{digest}", "size": len(text.encode())}
    for media in ("application/octet-stream", "text/markdown"):
        again = api.post("/pastes", content=text.encode(), headers={"Content-Type": media})
        assert (again.status_code, again.json()) == (201, r.json())
    got = api.get(f"/pastes/{digest}")
    assert got.status_code == 200 and got.content == text.encode()
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert [p.name for p in (server.data_dir / "pastes").iterdir()] == [digest]
    binary = bytes(range(256))
    r = api.post("/pastes", content=binary, headers={"Content-Type": "application/octet-stream"})
    assert api.get(f"/pastes/{r.json()['ref'].rsplit('/', 1)[1]}").content == binary


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"text": 3}', {"Content-Type": "application/json"}, 422, "validation_failed"),
        (b'{"txt": "a"}', {"Content-Type": "application/json"}, 422, "validation_failed"),
        (b"[1]", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b"", {"Content-Type": "application/octet-stream"}, 400, "bad_request"),
        # what a browser sends cross-site without a preflight
        (b"text=a", {"Content-Type": "application/x-www-form-urlencoded"}, 415, None),
        (b"a", {"Content-Type": "text/plain"}, 415, None),
    ],
)
def test_bad_bodies_are_refused_as_json_errors(api, body, headers, status, code):
    r = api.post("/pastes", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == (code or "unsupported_media_type")


def test_get_refuses_what_is_not_a_hash_and_says_when_it_is_not_stored(api):
    for bad in ("abc", GOOD.upper(), "..%2F..%2Fjobcast.db", GOOD + "0"):
        r = api.get(f"/pastes/{bad}")
        assert r.status_code == 400, (bad, r.text)
        assert "not a paste hash" in r.json()["error"]["message"]
    r = api.get(f"/pastes/{GOOD}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "paste_not_found"


def test_the_size_limit_is_413_and_a_body_past_it_is_not_read_whole(server_factory, data_dir):
    server = server_factory(data_dir, extra=["--max-paste-bytes", "1000"]).start()
    import httpx

    with httpx.Client(base_url=server.url, headers=server.headers) as api:
        raw = {"Content-Type": "application/octet-stream"}
        assert api.post("/pastes", content=b"x" * 1000, headers=raw).status_code == 201
        r = api.post("/pastes", content=b"x" * 1001, headers=raw)
        assert r.status_code == 413 and "max_paste_bytes" in r.json()["error"]["message"]
        r = api.post("/pastes", json={"text": "é" * 501})  # 1002 bytes of UTF-8
        assert r.status_code == 413, r.text

        def chunks():
            yield b"y" * 600
            yield b"y" * 600

        # no Content-Length (chunked): refused once past the limit
        assert api.post("/pastes", content=chunks(), headers=raw).status_code == 413
    # A Content-Length past the limit is answered before the body is sent at all.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            b"POST /pastes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream"
            b"\r\nAuthorization: Bearer %s"
            % (server.token or "").encode()
            + b"\r\nContent-Length: 1000000000\r\n\r\n"
        )
        assert s.recv(100).startswith(b"HTTP/1.1 413")


def test_malformed_and_unknown_refs_are_422_naming_them(api):
    bad = "ctx://paste/../../etc/passwd"
    r = api.post("/jobs", json={"argv": ["true"], "context": [bad]})
    assert r.status_code == 422 and bad in r.json()["error"]["message"]
    missing = f"ctx://paste/{GOOD}"
    r = api.post("/jobs", json={"argv": ["true"], "context": [missing]})
    assert r.status_code == 422 and missing in r.json()["error"]["message"]
    r = api.post("/jobs", json={"argv": ["cat"], "context_stdin": True})
    assert r.status_code == 422 and "context_stdin" in r.json()["error"]["message"]


def test_a_job_reads_its_context_files_and_the_first_on_stdin(api):
    a = api.post("/pastes", json={"text": "first\n"}).json()["ref"]
    b = api.post("/pastes", json={"text": "second\n"}).json()["ref"]
    job = api.post(
        "/jobs",
        json={
            "command": 'IFS=:; for f in $JOBCAST_CONTEXT; do cat "$f"; done; echo ---; cat',
            "context": [a, b],
            "context_stdin": True,
        },
    ).json()
    assert wait_job(api, job["id"])["status"] == "succeeded"
    assert api.get(f"/jobs/{job['id']}/log").content == b"first\nsecond\n---\nfirst\n"
    # without context_stdin, stdin stays /dev/null; without context, no variable
    plain = api.post(
        "/jobs", json={"command": 'echo "[${JOBCAST_CONTEXT-unset}]"; cat', "context": []}
    ).json()
    wait_job(api, plain["id"])
    assert api.get(f"/jobs/{plain['id']}/log").content == b"[unset]\n"
