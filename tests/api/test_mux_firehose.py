"""WS /ws: the firehose that serves `"*"` connections at the live end (api/mux.py: `Firehose`),
and the switches between it and the per-job path, with every job's events exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import websockets

from tests.api.test_mux import WAIT, Mux, connect, opened, ws_url
from tests.conftest import ServerProcess
from tests.helpers import async_wait_for


def ticker(n: int, prefix: str = "t", pause: float = 0.01) -> str:
    return f"for i in $(seq 1 {n}); do echo {prefix}-$i; sleep {pause}; done"


async def on_firehose(aapi: Any, count: int = 1) -> bool:
    return bool((await aapi.get("/stats")).json()["clients"]["mux_firehose"] == count)


async def until_complete(mux: Mux, jobs: list[str]) -> None:
    while sum(m.get("event") == "complete" and m["job"] in jobs for m in mux.seen) < len(jobs):
        await mux.recv()


async def exactly_once(aapi: Any, seen: list[dict[str, Any]], job: str, after: int = 0) -> None:
    """`seen` has the job's events after `after` up to its end, each once, in order."""
    seqs = [m["seq"] for m in seen if m["type"] == "event" and m["job"] == job]
    last = (await aapi.get(f"/jobs/{job}")).json()["last_seq"]
    assert seqs == list(range(after + 1, last + 1)), job


def lines(seen: list[dict[str, Any]], job: str) -> list[str]:
    text = "".join(
        m["data"]["text"]
        for m in seen
        if m["type"] == "event" and m["job"] == job and m["event"] == "stdout"
    )
    return text.split()


async def test_a_parked_star_connection_gets_every_jobs_events_once_in_order(server, aapi):
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=["*"])
        await mux.answer("subscribed")
        await async_wait_for(lambda: on_firehose(aapi), WAIT)
        # Jobs started after the subscription, printing at once: their events interleave.
        jobs = [
            (await aapi.post("/jobs", json={"command": ticker(30, f"j{i}")})).json()["id"]
            for i in range(12)
        ]
        quick = (await aapi.post("/jobs", json={"command": "echo quick"})).json()["id"]
        await until_complete(mux, [*jobs, quick])
        assert await on_firehose(aapi)  # served by the firehose all along
    for i, job in enumerate(jobs):
        await exactly_once(aapi, mux.seen, job)
        assert lines(mux.seen, job) == [f"j{i}-{n}" for n in range(1, 31)]
    await exactly_once(aapi, mux.seen, quick)
    order = [m["job"] for m in mux.seen if m["type"] == "event"]
    switches = sum(a != b for a, b in zip(order, order[1:], strict=False))
    assert switches > len(jobs) * 2  # interleaved, not one job after the other


async def test_a_lagging_connection_leaves_the_firehose_catches_up_and_rejoins(server, aapi):
    # The client reads nothing for a while (its socket fills up, then the server's buffer),
    # while bulk jobs print far more than any buffer holds and a ticker goes on after them.
    bulk = "python3 -c \"import sys\nfor i in range(120000): print(f'b-{i:07d}-' + 'x' * 60)\""
    # No keepalive pings: their pongs wait behind the unread frames, and on a slow machine the
    # client would close the connection itself (ping timeout) before it reads again.
    async with websockets.connect(
        ws_url(server),
        additional_headers=server.headers,
        max_size=1 << 24,
        max_queue=4,
        ping_interval=None,
    ) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=["*"])
        await mux.answer("subscribed")
        await async_wait_for(lambda: on_firehose(aapi), WAIT)
        tick = (await aapi.post("/jobs", json={"command": ticker(400, "tick", 0.02)})).json()
        big = [(await aapi.post("/jobs", json={"command": bulk})).json()["id"] for _ in range(3)]
        left = await async_wait_for(lambda: on_firehose(aapi, 0), WAIT)  # it lagged
        assert left
        for job in big:
            await async_wait_for(
                lambda j=job: _status(aapi, j, "succeeded"),  # type: ignore[misc]
                WAIT * 2,
            )
        # Now it reads: it catches up job by job, then the firehose takes it back while the
        # ticker still runs.
        rejoined = False
        while not any(m.get("event") == "complete" and m["job"] == tick["id"] for m in mux.seen):
            await mux.recv()
            if not rejoined and len(mux.seen) % 200 == 0:
                rejoined = await on_firehose(aapi)
        await until_complete(mux, big)
    assert rejoined, "the connection did not go back to the firehose while the ticker ran"
    for job in [*big, tick["id"]]:
        await exactly_once(aapi, mux.seen, job)
    for job in big:
        got = lines(mux.seen, job)
        assert len(got) == 120000 and got[0].startswith("b-0000000-")
        assert got[-1].startswith("b-0119999-")
    assert lines(mux.seen, tick["id"]) == [f"tick-{n}" for n in range(1, 401)]


async def _status(aapi: Any, job: str, status: str) -> bool:
    return bool((await aapi.get(f"/jobs/{job}")).json()["status"] == status)


async def test_resuming_with_after_catches_up_then_joins_the_firehose_without_gap(server, aapi):
    jobs = [
        (await aapi.post("/jobs", json={"command": ticker(150, f"r{i}")})).json() for i in range(4)
    ]
    ids = [j["id"] for j in jobs]
    async with connect(server) as ws:
        first = await opened(ws)
        await first.send(type="subscribe", jobs=["*"])
        await first.answer("subscribed")
        for i, job in enumerate(ids):
            await first.output_has(job, rf"r{i}-5\n")
    cursors = {job: max(e["seq"] for e in first.events(job)) for job in ids}
    await asyncio.sleep(0.3)  # the jobs go on meanwhile: the resume starts behind
    async with connect(server) as ws:
        second = await opened(ws)
        await second.send(type="subscribe", jobs=["*"], after=cursors)
        assert (await second.answer("subscribed"))["after"] == cursors
        joined = False
        while sum(m.get("event") == "complete" for m in second.seen) < len(ids):
            await second.recv()
            if not joined and second.seen[-1]["type"] == "event":
                joined = await on_firehose(aapi)
        assert joined, "the resumed connection never went onto the firehose"
    for i, job in enumerate(ids):
        await exactly_once(aapi, second.seen, job, cursors[job])
        # The first connection's events up to the cursor, then the second's: the whole output.
        text = "".join(
            m["data"]["text"]
            for m in [*first.events(job)[: cursors[job]], *second.events(job)]
            if m["event"] == "stdout"
        )
        assert text.split() == [f"r{i}-{n}" for n in range(1, 151)]


async def test_unsubscribing_one_job_leaves_the_firehose(server: ServerProcess, aapi):
    keep = (await aapi.post("/jobs", json={"command": ticker(100, "k")})).json()["id"]
    drop = (await aapi.post("/jobs", json={"command": ticker(100, "d")})).json()["id"]
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=["*"])
        await mux.answer("subscribed")
        await async_wait_for(lambda: on_firehose(aapi), WAIT)
        await mux.send(type="unsubscribe", jobs=[drop])
        await mux.answer("unsubscribed")
        assert await on_firehose(aapi, 0)  # it no longer follows everything
        at = len(mux.seen)
        await until_complete(mux, [keep])
        await asyncio.sleep(0.3)
    assert not [m for m in mux.seen[at:] if m.get("job") == drop and m["type"] == "event"]
    await exactly_once(aapi, mux.seen, keep)
