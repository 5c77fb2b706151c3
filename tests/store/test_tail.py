"""The SQLite store's in-memory tail: bounded by bytes with what is cached on its events, cut into
the same batches for every reader, released when the job finishes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobcast.models import EventType, JobSpec, JobStatus
from jobcast.store.base import BATCH_BYTES
from jobcast.store.sqlite import SQLiteStore

LIMIT = 1 << 20
CHUNK = 10_000  # bytes per output event: 26 to a batch


@pytest.fixture
async def tail_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "s", tail_bytes=LIMIT)
    await store.open()
    yield store
    await store.close()


async def _job_with_output(store: SQLiteStore, nbytes: int) -> str:
    job = await store.create_job(JobSpec(argv=["true"]))
    for _ in range(nbytes // CHUNK):
        await store.append(job.id, EventType.STDOUT, raw=b"x" * CHUNK)
    return job.id


async def _batches(store: SQLiteStore, job_id: str, after: int) -> list[tuple[int, int]]:
    out = []
    while events := await store.read(job_id, after):
        out.append((events[0].seq, events[-1].seq))
        after = events[-1].seq
    return out


async def test_readers_from_any_cursor_read_the_same_batches_after_their_first(tail_store):
    job_id = await _job_with_output(tail_store, LIMIT // 2)  # all of it in the tail
    last = (await tail_store.get_job(job_id)).last_seq
    runs = [await _batches(tail_store, job_id, after) for after in range(1, 40)]
    for run in runs:
        assert run[-1][1] == last
        # past the first, the same batches as every other reader's: one shared join each
        assert run[1:] == runs[0][len(runs[0]) - len(run) + 1 :]
    assert len({run[1][0] for run in runs if len(run) > 1}) <= 2  # not one per cursor
    sizes = [
        sum(e.size for e in await tail_store.read(job_id, first - 1)) for first, _ in runs[0][1:-1]
    ]
    assert all(BATCH_BYTES - CHUNK < s <= BATCH_BYTES for s in sizes)


async def test_what_is_cached_on_tail_events_counts_against_the_bound(tail_store):
    job_id = await _job_with_output(tail_store, LIMIT // 2)
    first = (await tail_store.read(job_id, 0))[0].seq
    # Cache frames twice the size of each event: the tail must drop old events to pay for them.
    after = 0
    while events := await tail_store.read(job_id, after):
        for ev in events:
            ev.remember("frame", bytes(2 * ev.size))
        after = events[-1].seq
    events = await tail_store.read(job_id, 0)
    assert events[0].seq == first  # the oldest are read from storage now...
    assert all(ev.meter is None and not ev.cache for ev in events)  # ...and keep nothing cached
    tail = tail_store._tails[job_id]
    held = sum(e.size + e.cached for e in tail.events)
    assert held <= LIMIT and tail.nbytes <= LIMIT
    assert sum(1 for e in tail.events if "frame" in e.cache) >= 10  # what fits stays shared


async def test_a_finished_jobs_tail_is_released(tail_store):
    job_id = await _job_with_output(tail_store, LIMIT // 2)
    in_memory = await tail_store.read(job_id, 1)
    assert in_memory[0].meter is not None
    await tail_store.set_status(job_id, JobStatus.RUNNING)
    done = await tail_store.set_status(job_id, JobStatus.SUCCEEDED, exit_code=0)
    assert in_memory[0].meter is None  # let go of, with whatever was cached on it
    again = await tail_store.read(job_id, 1)
    assert [e.raw for e in again] == [e.raw for e in in_memory]  # now from storage
    last = await tail_store.read(job_id, done.last_seq - 1)
    assert [e.type for e in last] == [EventType.COMPLETE]  # kept for followers at the end
