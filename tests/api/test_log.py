"""GET /jobs/{id}/log: raw bytes exactly, byte ranges, offsets, streams, and follow=1."""

from __future__ import annotations

import hashlib

import httpx

from tests.conftest import wait_job


def test_10_mb_of_random_binary_round_trips_byte_exact(api):
    cmd = 'python3 -c "import os,sys,random; random.seed(7); sys.stdout.buffer.write(random.randbytes(10_000_000))"'
    job = api.post("/jobs", json={"command": cmd}).json()
    assert wait_job(api, job["id"])["stdout_bytes"] == 10_000_000
    import random

    random.seed(7)
    expected = random.randbytes(10_000_000)
    body = api.get(f"/jobs/{job['id']}/log", params={"stream": "stdout"}).content
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_ranges_offsets_and_streams(api):
    job = api.post(
        "/jobs", json={"command": "printf 0123456789; printf ERR >&2; printf abc"}
    ).json()
    wait_job(api, job["id"])
    url = f"/jobs/{job['id']}/log"
    assert api.get(url, params={"stream": "stdout"}).content == b"0123456789abc"
    assert api.get(url, params={"stream": "stderr"}).content == b"ERR"
    assert sorted(api.get(url).content) == sorted(b"0123456789abcERR")
    r = api.get(url, params={"stream": "stdout"}, headers={"Range": "bytes=2-4"})
    assert (r.status_code, r.content, r.headers["Content-Range"]) == (206, b"234", "bytes 2-4/13")
    assert (
        api.get(url, params={"stream": "stdout"}, headers={"Range": "bytes=-3"}).content == b"abc"
    )
    assert (
        api.get(url, params={"stream": "stdout"}, headers={"Range": "bytes=10-"}).content == b"abc"
    )
    assert api.get(url, params={"stream": "stdout", "offset": 7}).content == b"789abc"
    r = api.get(url, params={"stream": "stdout"}, headers={"Range": "bytes=99-"})
    assert r.status_code == 416 and r.json()["error"]["code"] == "range_not_satisfiable"
    assert api.get(url, params={"stream": "bogus"}).status_code == 400
    assert api.get(url, headers={"Range": "lines=1-2"}).status_code == 400


def test_follow_streams_until_the_job_ends(api, server):
    job = api.post(
        "/jobs", json={"command": "for i in 1 2 3 4 5; do echo $i; sleep 0.05; done"}
    ).json()
    with httpx.stream(
        "GET", f"{server.url}/jobs/{job['id']}/log", params={"follow": 1}, timeout=30
    ) as r:
        chunks = r.iter_raw()
        first = next(chunks)
        assert first.startswith(b"1\n")
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"
        body = first + b"".join(chunks)
    assert body == b"1\n2\n3\n4\n5\n"


def test_follow_from_an_offset_of_a_finished_job(api, server):
    job = api.post("/jobs", json={"command": "echo hello world"}).json()
    wait_job(api, job["id"])
    r = api.get(f"/jobs/{job['id']}/log", params={"follow": 1, "offset": 6})
    assert r.content == b"world\n"
