"""SSE against a real server: live output, resume without gaps or repeats, fan-out, slow clients."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import orjson

from jobcast.protocol import SSEParser
from tests.conftest import wait_job
from tests.helpers import async_wait_for, collect_sse, output_of, rss_kib, stalled_sse_request

NUMBERS = "".join(f"{i}\n" for i in range(1, 100_001))


async def test_finished_job_replays_and_ends(aapi):
    job = (await aapi.post("/jobs", json={"command": "echo out; echo err >&2"})).json()
    events = await collect_sse(aapi, f"/jobs/{job['id']}/events")
    again = await collect_sse(aapi, f"/jobs/{job['id']}/events")
    assert events == again
    types = [e["type"] for e in events]
    assert types[0] == "status" and types[-1] == "complete" and "command" in types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert output_of(events) == "out\n" and output_of(events, "stderr") == "err\n"
    assert events[-1]["data"]["status"] == "succeeded" and events[-1]["data"]["exit_code"] == 0


async def test_output_arrives_while_the_job_runs(aapi):
    job = (await aapi.post("/jobs", json={"command": "printf abc; sleep 30"})).json()
    # a chunk with no newline reaches the follower while the job still runs
    async with aapi.stream("GET", f"/jobs/{job['id']}/events") as resp:
        parser = SSEParser()
        async for chunk in resp.aiter_raw():
            if any(orjson.loads(m.data)["type"] == "stdout" for m in parser.feed(chunk)):
                break
    assert (await aapi.get(f"/jobs/{job['id']}")).json()["status"] == "running"
    await aapi.post(f"/jobs/{job['id']}/cancel")


async def test_heartbeat_comments_keep_idle_streams_alive(aapi):
    job = (await aapi.post("/jobs", json={"command": "sleep 30"})).json()
    async with aapi.stream("GET", f"/jobs/{job['id']}/events") as resp:
        seen = b""
        async for chunk in resp.aiter_raw():
            seen += chunk
            if b": ping" in seen:
                break
    await aapi.post(f"/jobs/{job['id']}/cancel")


async def test_clients_that_leave_while_waiting_at_the_tail_are_forgotten(aapi, server):
    # They wait parked at the tail of a job that prints now and then; none reads to an end.
    script = "while true; do echo tick; sleep 0.05; done"
    job = (await aapi.post("/jobs", json={"command": script})).json()
    url = f"/jobs/{job['id']}/events"

    async def follow_a_while() -> None:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, timeout=10
        ) as client:
            async with client.stream("GET", url) as resp:
                ticks, parser = 0, SSEParser()
                async for chunk in resp.aiter_raw():
                    ticks += sum(b'"stdout"' in m.data.encode() for m in parser.feed(chunk))
                    if ticks >= 3:
                        return

    await asyncio.gather(*(follow_a_while() for _ in range(20)))

    async def forgotten() -> bool:
        stats = (await aapi.get("/stats")).json()
        return job["id"] not in stats["per_job"] and stats["clients"]["sse"] == 0

    await async_wait_for(forgotten, within=10)
    await aapi.post(f"/jobs/{job['id']}/cancel")


async def test_resume_with_last_event_id_gets_every_byte_once(any_store_server):
    async with httpx.AsyncClient(
        base_url=any_store_server.url, headers=any_store_server.headers, timeout=60
    ) as aapi:
        extra = any_store_server.extra
        store = extra[extra.index("--store") + 1] if "--store" in extra else "sqlite"
        assert (await aapi.get("/status")).json()["store"] == store
        await _resume_gets_every_byte_once(aapi)


async def _resume_gets_every_byte_once(aapi: httpx.AsyncClient) -> None:
    # 40 bursts 20 ms apart: at least 40 output events, so the cut lands mid-stream
    bursts = "for i in $(seq 0 39); do seq $((i*2500+1)) $((i*2500+2500)); sleep 0.02; done"
    job = (await aapi.post("/jobs", json={"command": bursts})).json()
    url = f"/jobs/{job['id']}/events"
    first = await collect_sse(aapi, url, limit=20)  # then the connection is dropped mid-stream
    rest = await collect_sse(aapi, url, headers={"Last-Event-ID": str(first[-1]["seq"])})
    events = first + rest
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert output_of(events) == NUMBERS
    assert rest[-1]["type"] == "complete"
    # `after=` is the same cursor for clients that cannot set headers
    tail = await collect_sse(aapi, f"{url}?after={events[-3]['seq']}")
    assert [e["seq"] for e in tail] == [events[-2]["seq"], events[-1]["seq"]]


async def test_base64_encoding_carries_exact_bytes(aapi):
    job = (await aapi.post("/jobs", json={"command": "printf '\\377\\376ok\\200'"})).json()
    events = await collect_sse(aapi, f"/jobs/{job['id']}/events?encoding=base64")
    import base64

    raw = b"".join(base64.b64decode(e["data"]["b64"]) for e in events if e["type"] == "stdout")
    assert raw == b"\xff\xfeok\x80"
    assert "\ufffd" in output_of(events)


async def test_100_clients_each_get_100000_lines_in_order_once(server):
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(
        base_url=server.url, headers=server.headers, timeout=120, limits=limits
    ) as c:
        job = (await c.post("/jobs", json={"command": "sleep 0.5; seq 1 100000"})).json()
        # one more client stops reading until the hundred others are done
        reader, writer = await stalled_sse_request(
            server.port, f"/jobs/{job['id']}/events", token=server.token
        )
        results = await asyncio.gather(
            *(collect_sse(c, f"/jobs/{job['id']}/events") for _ in range(100))
        )
        late = await _read_raw_sse(reader, writer)
    for events in [*results, late]:
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert output_of(events) == NUMBERS
        assert events[-1]["type"] == "complete"


def _dechunk(body: bytes) -> bytes:
    out, i = [], 0
    while True:
        j = body.index(b"\r\n", i)
        n = int(body[i:j], 16)
        if n == 0:
            return b"".join(out)
        out.append(body[j + 2 : j + 2 + n])
        i = j + 2 + n + 2


async def test_a_stalled_client_slows_nobody_and_catches_up(server, aapi):
    lines = 800_000  # 80 MB: were it buffered per client, memory would grow by more than that
    cmd = f"python3 -c \"import sys\nfor i in range({lines}): sys.stdout.write('%099d\\n' % i)\""
    job = (await aapi.post("/jobs", json={"command": "sleep 0.3; " + cmd})).json()
    expected = "".join(f"{i:099d}\n" for i in range(lines))
    rss_before = rss_kib(server.proc.pid)
    reader, writer = await stalled_sse_request(
        server.port, f"/jobs/{job['id']}/events", token=server.token
    )
    try:
        # The stalled client reads nothing while two others follow the whole job to its end.
        others = await asyncio.gather(
            *(collect_sse(aapi, f"/jobs/{job['id']}/events") for _ in range(2))
        )
        for events in others:
            assert output_of(events) == expected
        stats = (await aapi.get("/stats")).json()
        assert stats["per_job"].get(job["id"]) == 1  # only the stalled one is still connected
        growth_mib = (rss_kib(server.proc.pid) - rss_before) / 1024
        # The bound: the store's 8 MiB in-memory tail with its cached frames, SQLite's page
        # cache, transient 1 MiB read buffers and the allocator's high-water mark (27-31 MiB
        # measured), with room for a loaded machine.
        assert growth_mib < 48, f"server grew by {growth_mib:.1f} MiB while one client stalled"
    finally:
        # the server ends the stream after `complete`
        events = await _read_raw_sse(reader, writer)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert output_of(events) == expected


async def _read_raw_sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[dict]:
    try:
        body = await asyncio.wait_for(reader.read(-1), 60)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, chunked = body.partition(b"\r\n\r\n")
    assert b"200 OK" in head
    return [orjson.loads(m.data) for m in SSEParser().feed(_dechunk(chunked))]


async def test_a_client_that_stops_reading_is_disconnected_and_counted(server_factory, data_dir):
    srv = server_factory(data_dir, extra=["--stall-timeout-seconds", "1.5"]).start()
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.headers, timeout=60) as c:
        cmd = "python3 -c \"import sys\nfor i in range(2000000): sys.stdout.write('%099d\\n' % i)\""
        job = (await c.post("/jobs", json={"command": cmd})).json()
        reader, writer = await stalled_sse_request(
            srv.port, f"/jobs/{job['id']}/events", token=srv.token
        )

        async def counted() -> bool:
            return (await c.get("/stats")).json()["stalled_disconnects"] >= 1

        await async_wait_for(counted, within=60, interval=0.2)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await c.post(f"/jobs/{job['id']}/cancel")


async def test_firehose_carries_lifecycle_and_optionally_output(server, aapi):
    async def first_events(path: str, job_cmd: str, want: set[str]) -> list[dict]:
        got: list[dict] = []
        async with aapi.stream("GET", path) as resp:
            parser = SSEParser()
            job = None
            async for chunk in resp.aiter_raw():
                if job is None:
                    job = (await aapi.post("/jobs", json={"command": job_cmd})).json()
                for m in parser.feed(chunk):
                    if m.event == "trace":
                        continue  # the ledger's entries (tests/api/test_trace.py)
                    ev = orjson.loads(m.data)
                    if ev["job"] == job["id"]:
                        got.append(ev)
                if want <= {e["type"] for e in got} and got[-1]["type"] == "complete":
                    return got
        return got

    lifecycle = await first_events("/stream", "echo quiet", {"status", "complete"})
    assert "stdout" not in {e["type"] for e in lifecycle}
    loud = await first_events("/stream?output=1", "echo loud", {"status", "stdout", "complete"})
    assert output_of(loud) == "loud\n"
    with httpx.Client(base_url=server.url, headers=server.headers) as api:
        wait_job(api, loud[0]["job"])
