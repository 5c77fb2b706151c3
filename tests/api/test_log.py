"""GET /jobs/{id}/log: raw bytes exactly, byte ranges, offsets, streams, and follow=1."""

from __future__ import annotations

import hashlib
import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import wait_job


def test_10_mb_of_random_binary_round_trips_byte_exact(any_store_api):
    api = any_store_api
    cmd = 'python3 -c "import os,sys,random; random.seed(7); sys.stdout.buffer.write(random.randbytes(10_000_000))"'
    job = api.post("/jobs", json={"command": cmd}).json()
    assert wait_job(api, job["id"])["stdout_bytes"] == 10_000_000
    random.seed(7)
    expected = random.randbytes(10_000_000)
    body = api.get(f"/jobs/{job['id']}/log", params={"stream": "stdout"}).content
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_ranges_offsets_and_streams(any_store_api):
    api = any_store_api
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
        "GET",
        f"{server.url}/jobs/{job['id']}/log",
        params={"follow": 1},
        headers=server.headers,
        timeout=30,
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


def test_a_follower_resumes_with_range_as_with_offset(api, server):
    job = api.post("/jobs", json={"command": "printf 'hello world'"}).json()
    wait_job(api, job["id"])
    url = f"/jobs/{job['id']}/log"
    r = api.get(url, params={"follow": 1}, headers={"Range": "bytes=6-"})
    assert (r.status_code, r.content) == (200, b"world")
    for bad in ("bytes=2-4", "bytes=-3", "lines=1-"):  # a follower has no end to ask for
        r = api.get(url, params={"follow": 1}, headers={"Range": bad})
        assert r.status_code == 400 and "bytes=START-" in r.json()["error"]["message"], bad


def test_follow_of_a_running_job_is_byte_exact_from_any_offset(api, server):
    # Random bytes in pieces, with pauses: followers start before, during and past the output
    # written so far, and each gets exactly the bytes from its offset to the end.
    script = (
        "import random, sys, time\n"
        "random.seed(11)\n"
        "for _ in range(40):\n"
        "    sys.stdout.buffer.write(random.randbytes(50_000)); sys.stdout.flush()\n"
        "    time.sleep(0.02)\n"
    )
    job = api.post("/jobs", json={"argv": ["python3", "-c", script]}).json()
    url = f"{server.url}/jobs/{job['id']}/log"

    def follow(offset: int) -> bytes:
        params = {"follow": 1, "stream": "stdout", "offset": offset}
        with httpx.stream("GET", url, params=params, headers=server.headers, timeout=30) as r:
            return b"".join(r.iter_raw())

    random.seed(11)
    expected = b"".join(random.randbytes(50_000) for _ in range(40))
    with ThreadPoolExecutor(3) as pool:
        early = pool.submit(follow, 0)
        beyond = pool.submit(follow, 1_500_000)  # not written yet: waits for it
        while api.get(f"/jobs/{job['id']}").json()["stdout_bytes"] < 300_000:
            time.sleep(0.01)
        middle = pool.submit(follow, 123_457)
        assert early.result() == expected
        assert middle.result() == expected[123_457:]
        assert beyond.result() == expected[1_500_000:]
    assert wait_job(api, job["id"])["stdout_bytes"] == len(expected)


def test_follow_of_both_streams_keeps_their_order(api, server):
    script = "for i in $(seq 1 200); do echo out$i; echo err$i >&2; done; sleep 0.2; echo end"
    job = api.post("/jobs", json={"command": script}).json()
    with httpx.stream(
        "GET",
        f"{server.url}/jobs/{job['id']}/log",
        params={"follow": 1},
        headers=server.headers,
        timeout=30,
    ) as r:
        body = b"".join(r.iter_raw())
    wait_job(api, job["id"])
    assert body == api.get(f"/jobs/{job['id']}/log").content
    assert sorted(body.splitlines()) == sorted(
        [b"out%d" % i for i in range(1, 201)] + [b"err%d" % i for i in range(1, 201)] + [b"end"]
    )
