"""What the Redis store does beyond the contract: two stores (two nodes) on one Redis share jobs,
events and names; a job written by one is followed live from the other through one XREAD."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jobcast.errors import NameTaken
from jobcast.models import Event, EventType, JobSpec, JobStatus
from jobcast.store.redis import RedisStore

from ..conftest import free_port, redis_store
from ..helpers import async_wait_for


@pytest.fixture
async def pair(redis_server: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two open stores on the same keys, as two processes on two machines would be."""
    a = redis_store(redis_server, tick_seconds=0.2)
    b = RedisStore(redis_server, prefix=a.prefix, tick_seconds=0.2)
    await a.open()
    await b.open()
    yield a, b
    await b.close()
    await a.close()
    await a.drop()


async def _follow(store: RedisStore, job_id: str, after: int) -> list[Event]:
    """Every event past `after` up to `complete`, as api/follow.py gets them: handed over by the
    hub while parked at the tail, read from the store otherwise."""
    got: list[Event] = []
    while not got or got[-1].type is not EventType.COMPLETE:
        cursor = got[-1].seq if got else after
        woken = asyncio.Event()

        def hand(ev: Event | None, woken: asyncio.Event = woken) -> bool:
            if ev is not None:
                got.append(ev)
            if ev is None or ev.type is EventType.COMPLETE:
                woken.set()  # a tick: back to reading, as a follower does
                return False
            return True

        if store.listen(job_id, cursor, hand):
            await woken.wait()
            continue
        events = await store.read(job_id, cursor)
        got.extend(events)
        if not events:
            await store.wait(job_id, cursor)
    return got


async def test_a_job_written_by_one_node_is_followed_live_from_another(pair, redis_server):
    writer, _ = pair
    # No tick while the test runs: every follower stays parked, handed each event by the hub.
    other = RedisStore(redis_server, prefix=writer.prefix, tick_seconds=60)
    await other.open()
    try:
        await _followed_from(writer, other)
    finally:
        await other.close()


async def _followed_from(writer: RedisStore, other: RedisStore) -> None:
    job = await writer.create_job(JobSpec(argv=["true"]))
    await writer.set_status(job.id, JobStatus.RUNNING)
    seen = (await other.get_job(job.id)).last_seq
    followers = [asyncio.create_task(_follow(other, job.id, seen)) for _ in range(5)]

    async def parked() -> bool:
        return other.hub.listening(job.id) == len(followers)

    await async_wait_for(parked)
    assert list(other._watches) == [job.id]
    assert other.is_live(job.id)
    watch = other._watches[job.id]
    await writer.append(job.id, EventType.STDOUT, raw=b"hello ")
    await writer.append(job.id, EventType.STDERR, raw=b"world")

    async def read_here() -> bool:
        return watch.seen == seen + 2

    await async_wait_for(read_here)
    # What the XREAD brought is read again from memory: the very events handed to the followers.
    kept = await other.read(job.id, seen)
    await writer.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
    for got in await asyncio.wait_for(asyncio.gather(*followers), 10):
        assert [(e.seq, e.type) for e in got] == [
            (seen + 1, EventType.STDOUT),
            (seen + 2, EventType.STDERR),
            (seen + 3, EventType.STATUS),
            (seen + 4, EventType.COMPLETE),
        ]
        assert got[0].raw == b"hello " and got[-1].data["exit_code"] == 0
        assert got[:2] == kept  # the same objects (events compare by identity)
    # kept in memory, where their encodings are cached once for all the followers
    assert kept[0].remember("sse", b"frame") == b"frame" and kept[0].cache == {"sse": b"frame"}
    assert watch.task is not None
    await asyncio.wait_for(watch.task, 10)  # it ends with the job's `complete` event
    assert not other.is_live(job.id)


async def test_wait_on_another_nodes_job_wakes_at_its_append(pair):
    writer, other = pair
    job = await writer.create_job(JobSpec(argv=["true"]))
    waiter = asyncio.create_task(other.wait(job.id, 1))
    await asyncio.sleep(0)
    assert not waiter.done()
    await writer.append(job.id, EventType.STDOUT, raw=b"x")
    await asyncio.wait_for(waiter, 5)
    assert [e.raw for e in await other.read(job.id, 1)] == [b"x"]


async def test_a_name_is_held_across_nodes(pair):
    a, b = pair
    job = await a.create_job(JobSpec(argv=["true"], name="deploy"))
    with pytest.raises(NameTaken):
        await b.create_job(JobSpec(argv=["true"], name="deploy"))
    await a.set_status(job.id, JobStatus.CANCELLED)
    again = await b.create_job(JobSpec(argv=["true"], name="deploy"))
    assert (await a.get_job("deploy")).id == again.id


async def test_byte_ranges_and_the_firehose_from_a_node_that_did_not_write(pair):
    writer, other = pair
    start = other.last_gid()
    job = await writer.create_job(JobSpec(argv=["true"]))
    out = bytes(range(256)) * 400
    for i in range(0, len(out), 10_000):
        await writer.append(job.id, EventType.STDOUT, raw=out[i : i + 10_000])
        await writer.append(job.id, EventType.STDERR, raw=b"e%d" % i)
    await writer.set_status(job.id, JobStatus.FAILED, exit_code=1)
    assert await other.read_output(job.id, "stdout") == out
    assert await other.read_output(job.id, "stdout", 19_995, 20) == out[19_995:20_015]
    combined = await writer.read_output(job.id, "all")
    assert await other.read_output(job.id, "all", 10_001, 7) == combined[10_001:10_008]
    assert await other.output_size(job.id, "all") == len(combined)
    lifecycle = await other.read_all(start)
    assert [e.data["status"] for e in lifecycle] == ["queued", "failed", "failed"]
    assert lifecycle[-1].type is EventType.COMPLETE and lifecycle[-1].gid == writer.last_gid()


async def test_durable_across_reopen_and_ids_never_reused(redis_server):
    s1 = redis_store(redis_server)
    await s1.open()
    try:
        job = await s1.create_job(JobSpec(argv=["true"]))
        await s1.set_status(job.id, JobStatus.RUNNING, process=(123, 123, 456))
        await s1.append(job.id, EventType.STDOUT, raw=b"abc")
        gone = await s1.create_job(JobSpec(argv=["true"]))
        await s1.set_status(gone.id, JobStatus.CANCELLED)
        newest = s1.last_gid()
        await s1.delete_job(gone.id)
        await s1.close()
        s2 = RedisStore(redis_server, prefix=s1.prefix)
        await s2.open()
        try:
            assert s2.last_gid() == newest
            [(again, info)] = await s2.unfinished_jobs()
            assert again.id == job.id and info == (123, 123, 456)
            assert await s2.read_output(job.id, "stdout") == b"abc"
            # The new process goes on writing the job where the old one stopped.
            ev = await s2.append(job.id, EventType.STDOUT, raw=b"def")
            assert (ev.seq, ev.data, ev.gid) == (4, {"offset": 3, "length": 3}, newest + 1)
            assert await s2.read_output(job.id, "stdout") == b"abcdef"
        finally:
            await s2.close()
    finally:
        await s1.drop()


async def test_an_unreachable_redis_is_a_clear_error_without_the_password():
    store = RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionError, match=r"cannot reach Redis at redis://:\*\*\*@") as e:
        await store.open()
    assert "s3cret" not in str(e.value)
