"""The SQLite file gives deleted jobs' space back: incremental vacuum, on for new and small old
databases, in chunks through the writer; a big old database reuses its free pages."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from jobcast.datadir import DB_NAME
from jobcast.models import EventType, JobSpec, JobStatus
from jobcast.store import vacuum
from jobcast.store.sqlite import SQLiteStore

#: each job's events take about this many pages of the database
_EVENTS = 300


async def _fill(store: SQLiteStore, jobs: int) -> list[str]:
    ids = []
    for _ in range(jobs):
        job = await store.create_job(JobSpec(argv=["true"]))
        await store.set_status(job.id, JobStatus.RUNNING)
        await asyncio.gather(
            *(store.append(job.id, EventType.STDOUT, raw=b"line\n") for _ in range(_EVENTS))
        )
        await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
        ids.append(job.id)
    return ids


def _pragma(path: Path, name: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])


async def test_the_file_shrinks_after_many_jobs_are_deleted(tmp_path):
    store = SQLiteStore(tmp_path / "s")
    await store.open()
    try:
        ids = await _fill(store, 40)
        await store.close()  # a TRUNCATE checkpoint: all of it in the file
        full = (tmp_path / "s" / DB_NAME).stat().st_size
        assert _pragma(tmp_path / "s" / DB_NAME, "auto_vacuum") == 2  # incremental from the start
        store = SQLiteStore(tmp_path / "s")
        await store.open()
        assert await store.delete_jobs(ids[:-2]) == ids[:-2]
        usage = await store.disk_usage()
    finally:
        await store.close()
    assert usage["db_free_bytes"] == 0
    emptied = (tmp_path / "s" / DB_NAME).stat().st_size
    assert emptied < full / 4, (full, emptied)


async def test_a_small_old_database_is_converted_on_open(tmp_path):
    path = tmp_path / "s" / DB_NAME
    store = SQLiteStore(tmp_path / "s")
    await store.open()
    await _fill(store, 2)
    await store.close()
    with sqlite3.connect(path, isolation_level=None) as db:  # as an older release made it
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
    assert _pragma(path, "auto_vacuum") == 0
    again = SQLiteStore(tmp_path / "s")
    await again.open()
    try:
        assert len(await again.finished_jobs()) == 2
    finally:
        await again.close()
    assert _pragma(path, "auto_vacuum") == 2


async def test_a_big_old_database_is_left_as_it_is_and_reuses_its_free_pages(
    tmp_path, monkeypatch, caplog
):
    path = tmp_path / "s" / DB_NAME
    store = SQLiteStore(tmp_path / "s")
    await store.open()
    ids = await _fill(store, 20)
    await store.close()
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
    monkeypatch.setattr(vacuum, "CONVERT_MAX_BYTES", 4096)  # "big"
    store = SQLiteStore(tmp_path / "s")
    await store.open()
    try:
        assert "predates incremental vacuum" in caplog.text
        await store.delete_jobs(ids)
        freed = (await store.disk_usage())["db_free_bytes"]
        assert freed > 0  # left free, not vacuumed (nor looping on a vacuum that cannot run)
        await _fill(store, 10)
        assert (await store.disk_usage())["db_free_bytes"] < freed  # reused by new rows
    finally:
        await store.close()
    assert _pragma(path, "auto_vacuum") == 0
