"""What only the SQLite store has to prove: its files on disk after a crash, and their repair."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
from collections.abc import Iterable

import pytest

from jobcast.datadir import DB_NAME
from jobcast.models import EventType, JobSpec, JobStatus
from jobcast.store import logfiles
from jobcast.store.logfiles import OFF_LOOP_BYTES
from jobcast.store.sqlite import _SYNC_BYTES, SQLiteStore
from tests.helpers import async_wait_for


async def test_a_finished_job_without_its_complete_event_is_repaired_on_open(tmp_path):
    s1 = SQLiteStore(tmp_path / "s")
    await s1.open()
    job = await s1.create_job(JobSpec(argv=["true"]))
    await s1.set_status(job.id, JobStatus.RUNNING, started_at=10.0)
    await s1.append(job.id, EventType.STDOUT, raw=b"abc")
    await s1.append(job.id, EventType.STDERR, raw=b"e")
    await s1.set_status(job.id, JobStatus.FAILED, exit_code=3, finished_at=12.5)
    await s1.close()
    # As an older server left it when killed between its separate writes: the status changed,
    # but no final status event, no complete event, no byte counts, and output not indexed.
    with sqlite3.connect(tmp_path / "s" / DB_NAME) as db:
        db.execute(
            "DELETE FROM events WHERE job_id = ? AND seq > (SELECT MAX(seq) FROM events "
            "WHERE job_id = ? AND type = 'stderr')",
            (job.id, job.id),
        )
        db.execute("UPDATE jobs SET stdout_bytes = 0, stderr_bytes = 0, last_seq = 0")
    with s1.files.path(job.id, "stdout").open("ab") as f:
        f.write(b"def")

    s2 = SQLiteStore(tmp_path / "s")
    await s2.open()
    try:
        repaired = await s2.get_job(job.id)
        events = await s2.read(job.id, 0)
        assert not s2.is_live(job.id)
    finally:
        await s2.close()
    assert [(e.type, e.raw or e.data.get("status")) for e in events] == [
        (EventType.STATUS, "queued"),
        (EventType.STATUS, "running"),
        (EventType.STDOUT, b"abc"),
        (EventType.STDERR, b"e"),
        (EventType.STDOUT, b"def"),
        (EventType.STATUS, "failed"),
        (EventType.COMPLETE, "failed"),
    ]
    assert events[-1].data == {
        "status": "failed",
        "exit_code": 3,
        "signal": None,
        "duration": 2.5,
        "reason": None,
        "stdout_bytes": 6,
        "stderr_bytes": 1,
        "dropped_bytes": 0,
    }
    assert (repaired.stdout_bytes, repaired.stderr_bytes, repaired.last_seq) == (6, 1, 7)

    s3 = SQLiteStore(tmp_path / "s")  # once repaired, left alone
    await s3.open()
    try:
        again = await s3.read(job.id, 0)
        assert [(e.seq, e.gid, e.type, e.data) for e in again] == [
            (e.seq, e.gid, e.type, e.data) for e in events
        ]
    finally:
        await s3.close()


async def test_fast_output_is_fsynced_before_the_interval_is_up(tmp_path, monkeypatch):
    """Past `_SYNC_BYTES` unsynced, a sync starts at once: a job's end has little left to wait for."""
    store = SQLiteStore(tmp_path / "s", fsync_interval=3600)
    await store.open()
    synced: list[set[str]] = []
    sync = store.files.sync

    def recording(job_ids: Iterable[str]) -> None:
        ids = set(job_ids)
        synced.append(ids)
        sync(ids)

    monkeypatch.setattr(store.files, "sync", recording)
    try:
        job = await store.create_job(JobSpec(argv=["true"]))
        await store.set_status(job.id, JobStatus.RUNNING)
        await store.append(job.id, EventType.STDOUT, raw=b"x" * _SYNC_BYTES)

        async def syncs() -> list[set[str]]:
            return synced

        await async_wait_for(syncs, 10)
        assert synced == [{job.id}]
        assert store.files.unsynced_bytes == 0
    finally:
        await store.close()


async def test_a_job_s_output_is_fsynced_before_its_final_status_commits(tmp_path, monkeypatch):
    store = SQLiteStore(tmp_path / "s", fsync_interval=0)
    await store.open()
    seen: list[tuple[set[str], str]] = []
    sync = store.files.sync

    def recording(job_ids: Iterable[str]) -> None:
        ids = set(job_ids)
        with sqlite3.connect(tmp_path / "s" / DB_NAME) as db:
            for job_id in ids:
                seen.append(
                    (
                        ids,
                        db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0],
                    )
                )
        sync(ids)

    monkeypatch.setattr(store.files, "sync", recording)
    try:
        job = await store.create_job(JobSpec(argv=["true"]))
        await store.set_status(job.id, JobStatus.RUNNING)
        await store.append(job.id, EventType.STDOUT, raw=b"out")
        assert seen == []
        await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
        assert seen == [({job.id}, "running")]
    finally:
        await store.close()


async def test_a_database_made_before_sources_gets_their_columns(tmp_path):
    old = SQLiteStore(tmp_path)
    await old.open()
    job = await old.create_job(JobSpec(argv=["true"]))
    await old.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("DROP INDEX jobs_source_path")
    db.execute("ALTER TABLE jobs DROP COLUMN source")
    db.execute("ALTER TABLE jobs DROP COLUMN kind")
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        assert (await store.get_job(job.id)).kind == "job"
    finally:
        await store.close()


async def test_a_database_made_before_window_sizes_gets_their_columns(tmp_path):
    old = SQLiteStore(tmp_path)
    await old.open()
    job = await old.create_job(JobSpec(argv=["bash"], pty=True, cols=81, rows=25))
    await old.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("ALTER TABLE jobs DROP COLUMN cols")
    db.execute("ALTER TABLE jobs DROP COLUMN rows")
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        assert ((await store.get_job(job.id)).cols, (await store.get_job(job.id)).rows) == (81, 25)
        await store.append(job.id, EventType.RESIZE, {"cols": 120, "rows": 40})
        assert (await store.get_job(job.id)).cols == 120
    finally:
        await store.close()


async def test_a_database_without_the_extracted_and_progress_columns_gets_them(tmp_path):
    store = SQLiteStore(tmp_path)
    await store.open()
    job = await store.create_job(JobSpec(argv=["true"]))
    await store.set_status(job.id, JobStatus.RUNNING)
    await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
    await store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("ALTER TABLE jobs DROP COLUMN extracted")
    db.execute("ALTER TABLE jobs DROP COLUMN progress")
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path)
    await store.open()
    try:
        assert (await store.get_job(job.id)).extracted == {}
        other = await store.create_job(JobSpec(argv=["true"]))
        await store.append(other.id, EventType.PROGRESS, {"percent": 5.0})
        assert (await store.get_job(other.id)).progress == {"percent": 5.0}
    finally:
        await store.close()


async def test_large_and_small_writes_mixed_land_in_order_at_their_offsets(tmp_path):
    s = SQLiteStore(tmp_path / "s")
    await s.open()
    try:
        job = await s.create_job(JobSpec(argv=["true"]))
        await s.set_status(job.id, JobStatus.RUNNING)
        big = OFF_LOOP_BYTES
        parts = [b"a" * big, b"b", b"c" * (3 * big), b"d" * 10, b"e" * big]
        # All asked for at once: the large ones in the files' thread, the small ones behind them.
        evs = await asyncio.gather(*(s.append(job.id, EventType.STDOUT, raw=p) for p in parts))
        offsets = [sum(map(len, parts[:i])) for i in range(len(parts))]
        assert [e.data["offset"] for e in evs] == offsets
        assert [e.data["length"] for e in evs] == [len(p) for p in parts]
        assert s.files.path(job.id, "stdout").read_bytes() == b"".join(parts)
        assert await s.read_output(job.id, "stdout") == b"".join(parts)
    finally:
        await s.close()


async def test_a_failed_large_write_leaves_the_file_as_long_as_what_was_recorded(
    tmp_path, monkeypatch
):
    s = SQLiteStore(tmp_path / "s")
    await s.open()
    try:
        job = await s.create_job(JobSpec(argv=["true"]))
        await s.set_status(job.id, JobStatus.RUNNING)
        await s.append(job.id, EventType.STDOUT, raw=b"kept\n")
        real = os.write

        def half_then_full(fd: int, data: bytes) -> int:
            # The disk fills up half way through the write: what went in must come out again.
            if len(data) >= OFF_LOOP_BYTES:
                return real(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(logfiles.os, "write", half_then_full)
        with pytest.raises(OSError, match="No space left"):
            await s.append(job.id, EventType.STDOUT, raw=b"x" * (2 * OFF_LOOP_BYTES))
        monkeypatch.setattr(logfiles.os, "write", real)
        assert s.files.path(job.id, "stdout").read_bytes() == b"kept\n"
        ev = await s.append(job.id, EventType.STDOUT, raw=b"y" * OFF_LOOP_BYTES)
        assert ev.data["offset"] == 5
        assert await s.read_output(job.id, "stdout") == b"kept\n" + b"y" * OFF_LOOP_BYTES
    finally:
        await s.close()
