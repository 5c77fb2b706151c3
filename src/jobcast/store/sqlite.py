"""The embedded store: SQLite (WAL) for jobs and the event index, append-only files for output bytes.

Each unfinished job has a bounded in-memory tail of its newest events, so followers at the tail are
served from memory with the encodings cached on the events; anyone further behind reads from SQLite
and the files, in a reader thread. The state of unfinished jobs (tails, counters, statuses, names)
lives on the event loop and changes at once; SQLite is written by one thread (`Writer`), in batches.
An event is shown to readers (in the tail, to listeners, in the firehose) once its batch has
committed, so nothing a client was given is lost or renumbered by a crash of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..datadir import DB_NAME
from ..errors import JobNotFound
from ..hub import Hub, Listener
from ..models import (
    LIFECYCLE_EVENTS,
    OUTPUT_EVENTS,
    Event,
    EventType,
    Job,
    JobKind,
    JobList,
    JobSpec,
    JobStatus,
    SourceInfo,
    complete_data,
    new_job_id,
)
from . import vacuum
from .base import BATCH_BYTES, DiskUsage, FinishedJob, ProcessInfo, StreamName
from .logfiles import OutputFiles
from .records import (
    KEPT,
    build_job,
    check_deletable,
    check_fields,
    check_transition,
    name_taken,
    parse_source,
)
from .tail import EVENT_COST, TAIL_BYTES, Tail, from_tail, take
from .writer import Write, Writer

__all__ = ["SQLiteStore"]

logger = logging.getLogger("jobcast.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,
    spec BLOB NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    signal TEXT,
    pid INTEGER,
    pgid INTEGER,
    proc_start INTEGER,
    reason TEXT,
    stdout_bytes INTEGER NOT NULL DEFAULT 0,
    stderr_bytes INTEGER NOT NULL DEFAULT 0,
    dropped_bytes INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'job',
    source BLOB,
    cols INTEGER,
    rows INTEGER,
    extracted BLOB,
    progress BLOB
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs (name);
CREATE TABLE IF NOT EXISTS events (
    gid INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    data BLOB,
    offset INTEGER,
    length INTEGER,
    pos INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS events_job_seq ON events (job_id, seq);
CREATE INDEX IF NOT EXISTS events_job_pos ON events (job_id, pos) WHERE pos IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- jobs whose row is gone and whose events are being deleted, in chunks (resumed on open)
CREATE TABLE IF NOT EXISTS deleting (job_id TEXT PRIMARY KEY);
"""

_INSERT_EVENT = (
    "INSERT INTO events (gid, job_id, seq, type, ts, data, offset, length, pos) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ALL = "*"  # the hub key of the firehose
_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_LIFECYCLE_SQL = ",".join(f"'{t.value}'" for t in sorted(LIFECYCLE_EVENTS))
_EVENT_COLS = "gid, job_id, seq, type, ts, data, offset, length"
#: events deleted per transaction: a big job's delete never holds the write lock for long
_DELETE_CHUNK = 5000
#: jobs forgotten per transaction by `delete_jobs`
_FORGET_CHUNK = 500
_READER_THREADS = 2
_UNLINK_THREADS = 8
#: unsynced output that starts an fsync before the interval is up: what is left for a job's end
#: (which waits for its fsync) stays small whatever the output's rate
_SYNC_BYTES = 32 << 20
_NO_BOUND = 1 << 62

T = TypeVar("T")
Row = tuple[Any, ...]


class SQLiteStore:
    def __init__(
        self,
        data_dir: Path,
        *,
        tick_seconds: float = 1.0,
        tail_bytes: int = TAIL_BYTES,
        firehose_events: int = 20_000,
        fsync_interval: float = 1.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.files = OutputFiles(self.data_dir / "logs")
        self.hub = Hub(tick_seconds)
        self._tail_bytes = tail_bytes
        self._fsync_interval = fsync_interval
        self._writer: Writer | None = None
        #: the loop's own read connection, for lookups by key; scans go to the reader threads
        self._db: sqlite3.Connection | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_dbs: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._syncer: asyncio.Task[None] | None = None
        self._sync_due = asyncio.Event()
        self._tails: dict[str, Tail] = {}
        self._finished_tails: OrderedDict[str, Tail] = OrderedDict()
        #: unfinished jobs' statuses and names, changed before their write commits
        self._status: dict[str, JobStatus] = {}
        self._names: dict[str, str] = {}
        self._global: list[Event] = []
        self._global_first = 1
        self._global_bytes = 0
        self._global_cap = firehose_events
        self._gid = 0
        self._shown_gid = 0
        self._output_appended = 0
        self._job_cols: list[str] = []
        #: incremental vacuum is on (vacuum.py); one pass at a time
        self._incremental = False
        self._vacuuming = asyncio.Lock()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return self._writer

    @property
    def closed(self) -> bool:
        return self.hub.closed

    def wake_all(self) -> None:
        self.hub.wake_all()

    def wake_firehose(self) -> None:
        self.hub.notify(_ALL)

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.files.open()
        path = self.data_dir / DB_NAME
        self._writer = Writer(path, _INSERT_EVENT, self._committed)
        wdb = self._writer.connect()
        wdb.executescript(SCHEMA)
        _migrate(wdb)
        self._incremental = await asyncio.to_thread(vacuum.enable_incremental, wdb, path)
        db = self._db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA query_only=1")
        self._job_cols = [d[0] for d in db.execute("SELECT * FROM jobs LIMIT 0").description]
        # Deleting the newest job lowers MAX(gid); the floor kept at each delete keeps firehose
        # ids from being handed out twice (a resuming client would skip the new events).
        self._gid = self._shown_gid = db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(gid) FROM events), 0), "
            "COALESCE((SELECT value FROM meta WHERE key = 'gid_floor'), 0))"
        ).fetchone()[0]
        self._global_first = self._gid + 1
        active = db.execute(
            "SELECT id, name, status FROM jobs WHERE status IN (?, ?) ORDER BY id", _ACTIVE
        ).fetchall()
        for job_id, name, status in active:
            self._status[job_id] = JobStatus(status)
            if name is not None:
                self._names[name] = job_id
        self._readers = ThreadPoolExecutor(
            _READER_THREADS, "jobcast-store-read", initializer=self._open_reader
        )
        self._writer.start()
        for (job_id,) in db.execute("SELECT job_id FROM deleting").fetchall():
            await self._purge(job_id)
        await self._vacuum()
        for job_id, _, _ in active:
            await self._recover_output(job_id)
            # Unfinished jobs have a tail, where followers park: a source resumed by a new
            # server may stay quiet for long, and must not look finished meanwhile.
            self._tail(job_id)
        await self._repair_unfinished_ends()
        if self._fsync_interval > 0:
            self._syncer = asyncio.create_task(self._sync_output(), name="jobcast-store-fsync")
        self.hub.start()

    async def close(self) -> None:
        await self.hub.close()
        if self._syncer is not None:
            self._syncer.cancel()
            await asyncio.gather(self._syncer, return_exceptions=True)
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        await asyncio.to_thread(self.files.sync, self.files.take_unsynced())
        if self._readers is not None:
            await asyncio.to_thread(self._readers.shutdown)
            self._readers = None
        for rdb in self._reader_dbs:
            rdb.close()
        self._reader_dbs.clear()
        self.files.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- the writer and the readers ---------------------------------------------------------------

    async def _write(self, write: Write, *, wait: bool) -> Any:
        """Submit `write`; with `wait`, until it has committed (its result, or its error raised)."""
        if wait:
            write.future = asyncio.get_running_loop().create_future()
        self.writer.submit(write)
        if write.future is not None:
            return await write.future
        return None

    def _committed(self, writes: list[Write]) -> None:
        """On the loop, after each commit: show the batch's events, in order, then resolve."""
        shown = False
        for w in writes:
            for ev in w.done or ():
                self._show(ev)
                shown = True
            if w.future is not None and not w.future.done():
                if w.error is not None:
                    w.future.set_exception(w.error)
                else:
                    w.future.set_result(w.result)
        if shown:
            self.hub.notify(_ALL)

    def _show(self, ev: Event) -> None:
        # A write that failed is logged by the writer and shown all the same: a hole in the tail
        # would stop every follower of the job for good.
        self._shown_gid = ev.gid
        tail = self._tails.get(ev.job) or self._finished_tails.get(ev.job)
        if tail is not None:
            tail.shown_seq = ev.seq
            if ev.type in OUTPUT_EVENTS:
                tail.shown_sizes[ev.type.value] = ev.data["offset"] + ev.data["length"]
            elif ev.type is EventType.STATUS:
                tail.shown_status = ev.data["status"]
            elif ev.type is EventType.COMPLETE:
                self._status.pop(ev.job, None)
                self._finish(ev.job, tail)
        self.hub.notify(ev.job, ev)

    def _open_reader(self) -> None:
        """Each reader thread's own connection (WAL: readers never wait for the writer)."""
        rdb = sqlite3.connect(
            self.data_dir / DB_NAME, isolation_level=None, check_same_thread=False
        )
        rdb.execute("PRAGMA query_only=1")
        self._local.db = rdb
        self._reader_dbs.append(rdb)

    async def _reading(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(reader_db, *args)` in a reader thread."""
        if self._readers is None:
            raise RuntimeError("the store is not open")

        def call() -> T:
            return fn(self._local.db, *args)

        return await asyncio.get_running_loop().run_in_executor(self._readers, call)

    async def _sync_output(self) -> None:
        """fsync the files of jobs that wrote, every `fsync_interval` or `_SYNC_BYTES` (never on
        the loop), one sync at a time."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_due.wait(), self._fsync_interval)
            self._sync_due.clear()
            jobs = self.files.take_unsynced()
            if jobs:
                try:
                    await asyncio.to_thread(self.files.sync, jobs)
                except OSError:
                    logger.exception("fsync of the output of %d jobs failed", len(jobs))

    # -- jobs -------------------------------------------------------------------------------------

    async def create_job(self, spec: JobSpec, *, source: SourceInfo | None = None) -> Job:
        if spec.name is not None and spec.name in self._names:
            raise name_taken(spec.name, self._names[spec.name])
        job_id = new_job_id()
        kind, blob = ("job", None) if source is None else ("source", source.model_dump_json())
        row = (
            job_id,
            spec.name,
            JobStatus.QUEUED.value,
            spec.model_dump_json(),
            time.time(),
            kind,
            blob,
        )
        self._tails[job_id] = Tail(0, {"stdout": 0, "stderr": 0}, self._tail_bytes)
        self._status[job_id] = JobStatus.QUEUED
        if spec.name is not None:
            self._names[spec.name] = job_id
        ev, event_row = self._stage(job_id, EventType.STATUS, {"status": JobStatus.QUEUED.value})

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO jobs (id, name, status, spec, created_at, kind, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._write(Write([event_row], insert, [ev]), wait=True)
        return await self.get_job(job_id)

    async def get_job(self, ref: str) -> Job:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (ref,)).fetchone()
        if row is None:
            row = self.db.execute(
                "SELECT * FROM jobs WHERE name = ? ORDER BY status IN (?, ?) DESC, id DESC LIMIT 1",
                (ref, *_ACTIVE),
            ).fetchone()
        if row is None:
            raise JobNotFound.for_ref(ref)
        return self._job(row)

    def _job(self, row: sqlite3.Row | tuple[Any, ...]) -> Job:
        rec = dict(zip(self._job_cols, row, strict=True))
        spec = orjson.loads(rec.pop("spec"))
        for key in ("pgid", "proc_start"):
            rec.pop(key)
        rec["source"] = parse_source(rec["source"])
        rec["extracted"] = orjson.loads(rec["extracted"]) if rec["extracted"] else {}
        rec["progress"] = orjson.loads(rec["progress"]) if rec["progress"] else None
        tail = self._tails.get(rec["id"])
        if tail is not None:
            rec["last_seq"] = tail.shown_seq
            rec["stdout_bytes"] = tail.shown_sizes["stdout"]
            rec["stderr_bytes"] = tail.shown_sizes["stderr"]
            if tail.shown_status is not None and rec["status"] != tail.shown_status:
                # Committed in the writer thread, not yet handed to readers: the job is shown as
                # its events show it, so a final status always comes with a readable `complete`.
                rec["status"] = tail.shown_status
                if not JobStatus(tail.shown_status).is_final:
                    rec.update(exit_code=None, signal=None, finished_at=None)
        return build_job(rec, spec)

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        label: dict[str, str] | None = None,
        name: str | None = None,
        kind: JobKind | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobList:
        where, args = ["1"], list[str]()
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if name is not None:
            where.append("name = ?")
            args.append(name)
        for key, value in (label or {}).items():
            where.append("json_extract(spec, '$.labels.' || json_quote(?)) = ?")
            args += [key, value]
        if cursor is not None:
            where.append("id < ?")
            args.append(cursor)
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        # A label filter scans every job: in a reader thread.
        rows = await self._reading(_fetchall, sql, (*args, limit + 1))
        jobs = [self._job(r) for r in rows[:limit]]
        return JobList(jobs=jobs, next_cursor=jobs[-1].id if len(rows) > limit else None)

    async def unfinished_jobs(self) -> list[tuple[Job, ProcessInfo | None]]:
        rows = self.db.execute(
            "SELECT id, pid, pgid, proc_start FROM jobs WHERE status IN (?, ?) ORDER BY id", _ACTIVE
        ).fetchall()
        out: list[tuple[Job, ProcessInfo | None]] = []
        for job_id, pid, pgid, start in rows:
            info = (
                (pid, pgid, start)
                if pid is not None and pgid is not None and start is not None
                else None
            )
            out.append((await self.get_job(job_id), info))
        return out

    async def job_spec(self, job_id: str) -> JobSpec:
        row = self.db.execute("SELECT spec FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound.for_ref(job_id)
        return JobSpec.model_validate_json(row[0])

    async def set_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        process: ProcessInfo | None = None,
        **fields: Any,
    ) -> Job:
        check_fields(fields)
        if status.is_final:
            # Before the final commit, so a job recorded ended has all its output on disk.
            await asyncio.to_thread(self.files.sync, [job_id])
        current = self._status.get(job_id)
        # The row is read only where it is needed (a final status copies it into `complete`): a
        # job's start is on the way to its first output.
        job = await self.get_job(job_id) if current is None or status.is_final else None
        if current is None:
            assert job is not None
            current = job.status
        check_transition(job_id, current, status)
        # From here to the write, nothing awaits: the change is one step for everyone on the loop.
        self._status[job_id] = status
        cols: dict[str, Any] = {"status": status.value, **fields}
        if process is not None:
            cols.update(zip(("pid", "pgid", "proc_start"), process, strict=True))
        data: dict[str, Any] = {"status": status.value}
        if fields.get("reason"):
            data["reason"] = fields["reason"]
        ev, row = self._stage(job_id, EventType.STATUS, data)
        events, rows = [ev], [row]
        if job is not None and status.is_final:
            if job.name is not None and self._names.get(job.name) == job_id:
                del self._names[job.name]
            ended = job.model_copy(update={"status": status, **fields})
            events.append(self._stage_complete(ended, cols, rows))
        # Status, `complete` event and byte counts in one transaction: never one without the other.
        await self._write(Write(rows, _update_job(job_id, cols), events), wait=True)
        return await self.get_job(job_id)

    def _stage_complete(self, ended: Job, cols: dict[str, Any], rows: list[Row]) -> Event:
        """Stage the job's `complete` event; add its row to `rows` and the final counts to `cols`."""
        tail = self._tail(ended.id)
        counts = {
            "last_seq": tail.last_seq + 1,
            "stdout_bytes": tail.sizes["stdout"],
            "stderr_bytes": tail.sizes["stderr"],
        }
        cols.update(counts)
        ev, row = self._stage(
            ended.id, EventType.COMPLETE, complete_data(ended.model_copy(update=counts))
        )
        rows.append(row)
        return ev

    async def find_source(self, path: str) -> Job | None:
        row = self.db.execute(
            "SELECT * FROM jobs WHERE kind = 'source' AND json_extract(source, '$.path') = ? "
            "ORDER BY id DESC LIMIT 1",
            (path,),
        ).fetchone()
        return None if row is None else self._job(row)

    async def set_source(
        self, job_id: str, source: SourceInfo, notice: dict[str, Any] | None = None
    ) -> None:
        blob = source.model_dump_json()
        events, rows = [], []
        if notice is not None:
            ev, row = self._stage(job_id, EventType.ERROR, notice)
            events.append(ev)
            rows.append(row)

        def update(db: sqlite3.Connection) -> None:
            db.execute("UPDATE jobs SET source = ? WHERE id = ?", (blob, job_id))

        await self._write(Write(rows, update, events), wait=True)

    async def set_process(self, job_id: str, info: ProcessInfo) -> None:
        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE jobs SET pid = ?, pgid = ?, proc_start = ? WHERE id = ?", (*info, job_id)
            )

        await self._write(Write(op=update), wait=True)

    async def delete_job(self, job_id: str) -> None:
        job = await self.get_job(job_id)
        check_deletable(job, live=job.id in self._tails)
        floor = self._gid

        def forget(db: sqlite3.Connection) -> None:
            # One transaction: the job is gone for readers, the floor kept, the events marked
            # for deletion (resumed on open if the server dies first).
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('gid_floor', ?)", (floor,))
            db.execute("INSERT OR IGNORE INTO deleting (job_id) VALUES (?)", (job.id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))

        await self._write(Write(op=forget), wait=True)
        self._finished_tails.pop(job.id, None)
        self.files.finish(job.id)
        await self._purge(job.id)
        await self._vacuum()

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[str]:
        deleted: list[str] = []
        for start in range(0, len(job_ids), _FORGET_CHUNK):
            # Jobs this node still runs (or whose end has not committed) are left alone.
            chunk = [
                j
                for j in job_ids[start : start + _FORGET_CHUNK]
                if j not in self._tails and j not in self._status
            ]
            if chunk:
                gone = await self._write(Write(op=_forget(chunk, self._gid)), wait=True)
                for job_id in gone:
                    self._finished_tails.pop(job_id, None)
                    self.files.finish(job_id)
                deleted += gone
        for start in range(0, len(deleted), _FORGET_CHUNK):
            await self._purge_many(deleted[start : start + _FORGET_CHUNK])
        await self._vacuum()
        order = {j: i for i, j in enumerate(job_ids)}
        return sorted(deleted, key=order.__getitem__)

    async def _purge_many(self, job_ids: list[str]) -> None:
        """`_purge` for many forgotten jobs at once: their events a chunk per transaction."""
        ids = orjson.dumps(job_ids)

        def chunk(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM events WHERE gid IN (SELECT gid FROM events "
                "WHERE job_id IN (SELECT value FROM json_each(?)) LIMIT ?)",
                (ids, _DELETE_CHUNK),
            )
            if cur.rowcount < _DELETE_CHUNK:
                db.execute(
                    "DELETE FROM deleting WHERE job_id IN (SELECT value FROM json_each(?))", (ids,)
                )
                return False
            return True

        while await self._write(Write(op=chunk), wait=True):
            pass

        def unlink() -> None:
            # In parallel: where the disk is mounted with `discard`, each unlink waits for its
            # TRIM (1-3 ms here); eight at once take 1/19 of the time (measured, bench/prune.py).
            with ThreadPoolExecutor(_UNLINK_THREADS, "jobcast-store-unlink") as pool:
                list(pool.map(self.files.unlink, job_ids))

        await asyncio.to_thread(unlink)

    async def _vacuum(self) -> None:
        """Give the database's free pages back to the disk, a chunk per write (vacuum.py)."""
        if not self._incremental:
            return
        # One pass at a time; a caller that waited finds what the pass before left, if anything.
        async with self._vacuuming:
            while await self._write(Write(op=vacuum.step), wait=True):
                pass

    async def finished_jobs(self) -> list[FinishedJob]:
        sql = (
            "SELECT id, name, COALESCE(finished_at, started_at, created_at) AS ended, "
            "stdout_bytes + stderr_bytes FROM jobs WHERE status NOT IN (?, ?) ORDER BY ended, id"
        )
        rows = await self._reading(_fetchall, sql, _ACTIVE)
        return [FinishedJob(*row) for row in rows]

    async def disk_usage(self) -> DiskUsage:
        return await self._reading(self._disk_usage)

    async def count_jobs(self) -> dict[str, int]:
        rows = await self._reading(_fetchall, "SELECT status, COUNT(*) FROM jobs GROUP BY 1", ())
        return {status: n for status, n in rows}

    @property
    def output_bytes_appended(self) -> int:
        return self._output_appended

    def _disk_usage(self, db: sqlite3.Connection) -> DiskUsage:
        """In a reader thread: a walk of the data dir (thousands of output files)."""
        path = self.data_dir / DB_NAME
        return {
            "data_dir_bytes": _tree_bytes(self.data_dir),
            "db_bytes": _file_bytes(path),
            "db_free_bytes": vacuum.free_bytes(db),
            "wal_bytes": _file_bytes(path.with_name(path.name + "-wal")),
            "output_bytes": _tree_bytes(self.files.root),
        }

    async def _purge(self, job_id: str) -> None:
        """Delete a forgotten job's events, a chunk per transaction, then its files."""

        def chunk(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM events WHERE gid IN (SELECT gid FROM events WHERE job_id = ? LIMIT ?)",
                (job_id, _DELETE_CHUNK),
            )
            if cur.rowcount < _DELETE_CHUNK:
                db.execute("DELETE FROM deleting WHERE job_id = ?", (job_id,))
                return False
            return True

        while await self._write(Write(op=chunk), wait=True):
            pass
        await asyncio.to_thread(self.files.unlink, job_id)

    # -- events -----------------------------------------------------------------------------------

    def _tail(self, job_id: str) -> Tail:
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if tail is not None:
            return tail
        row = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)
        ).fetchone()
        sizes = {s: self.files.size(job_id, s) for s in ("stdout", "stderr")}
        tail = Tail(row[0], sizes, self._tail_bytes)
        self._tails[job_id] = tail
        return tail

    async def append(
        self,
        job_id: str,
        type: EventType,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
        *,
        ts: float | None = None,
    ) -> Event:
        offset = None
        if raw and type in OUTPUT_EVENTS and self.files.is_large(job_id, type.value, len(raw)):
            offset = await self.files.append_large(job_id, type.value, raw)
        ev, row = self._stage(job_id, type, data, raw, ts, offset)
        if type is EventType.RESIZE:
            # The job shows its last window size; its spec keeps the one it started with (the
            # header of its recording).
            resized = _resize_job(job_id, ev.data["cols"], ev.data["rows"])
            await self._write(Write([row], resized, [ev]), wait=True)
            return ev
        if type in KEPT:
            # The job's latest value is kept with it, in the event's own commit.
            await self._write(Write([row], _keep_latest(job_id, ev), [ev]), wait=True)
            return ev
        # Output too waits for its commit (a fraction of a millisecond): the runner's batching
        # window then starts after the fan-out, which runs in the commit's callback.
        await self._write(Write([row], done=[ev]), wait=True)
        return ev

    def _stage(
        self,
        job_id: str,
        type: EventType,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
        ts: float | None = None,
        written: int | None = None,
    ) -> tuple[Event, Row]:
        """The event in memory (numbered, in the tail, its bytes in the file) and its row to write.
        `written`: the offset the output's bytes were written at already (`append_large`)."""
        tail = self._tail(job_id)
        seq = tail.last_seq + 1
        offset = length = pos = None
        if type in OUTPUT_EVENTS:
            raw = raw or b""
            offset = self.files.append(job_id, type.value, raw) if written is None else written
            if self.files.unsynced_bytes >= _SYNC_BYTES:
                self._sync_due.set()
            length = len(raw)
            self._output_appended += length
            pos = tail.pos
            tail.pos += length
            tail.sizes[type.value] = offset + length
            data = {"offset": offset, "length": length}
            blob = None
        else:
            data = data or {}
            blob = orjson.dumps(data)
        self._gid += 1
        ev = Event(seq, job_id, type, time.time() if ts is None else ts, data, raw, self._gid)
        tail.add(ev)
        self._add_global(ev)
        return ev, (ev.gid, job_id, seq, type.value, ev.ts, blob, offset, length, pos)

    def _finish(self, job_id: str, tail: Tail) -> None:
        self.files.finish(job_id)
        self._tails.pop(job_id, None)
        # Keep the `complete` event of a few finished jobs, for their followers at the end; those
        # still catching up read the rest from storage.
        tail.release()
        self._finished_tails[job_id] = tail
        while len(self._finished_tails) > 16:
            self._finished_tails.popitem(last=False)

    def _add_global(self, ev: Event) -> None:
        self._global.append(ev)
        self._global_bytes += ev.size + EVENT_COST
        if len(self._global) > self._global_cap or self._global_bytes > self._tail_bytes:
            cut = len(self._global) // 2
            self._global_bytes -= sum(e.size + EVENT_COST for e in self._global[:cut])
            del self._global[:cut]
            self._global_first = self._global[0].gid

    async def read(self, job_id: str, after: int, max_bytes: int = BATCH_BYTES) -> list[Event]:
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if tail is not None and after + 1 >= tail.first_seq:
            first = tail.first_seq
            start, end = after + 1 - first, tail.shown_seq + 1 - first
            return take(tail.events, start, max_bytes, end, aligned=True)
        # Older than the tail: committed rows, a contiguous run from `after` on. Events trimmed
        # from the tail before their commit are read once committed, never skipped.
        upto = tail.shown_seq if tail is not None else _NO_BOUND
        sql = (
            f"SELECT {_EVENT_COLS} FROM events WHERE job_id = ? AND seq > ? AND seq <= ? "
            "ORDER BY seq LIMIT 1000"
        )
        events = await self._reading(self._read_events, sql, (job_id, after, upto), max_bytes)
        if not events and tail is None:
            await self.get_job(job_id)  # raises JobNotFound for a job that does not exist
        return events

    def _read_events(
        self, db: sqlite3.Connection, sql: str, args: tuple[Any, ...], max_bytes: int
    ) -> list[Event]:
        """In a reader thread: the rows of `sql` that fit in `max_bytes`, their bytes from the files."""
        rows: list[Row] = []
        total = 0
        cur = db.execute(sql, args)
        for row in cur:
            size = row[7] if row[6] is not None else 64
            if rows and total + size > max_bytes:
                break
            rows.append(row)
            total += size
        cur.close()  # ends the read transaction, which would hold back checkpoints
        spans = [(r[1], r[3], r[6], r[7]) for r in rows if r[6] is not None]
        raws = iter(self.files.read_spans(spans))
        out: list[Event] = []
        for gid, job_id, seq, type_, ts, blob, offset, length in rows:
            kind = EventType(type_)
            if kind in OUTPUT_EVENTS:
                data = {"offset": offset, "length": length}
                out.append(Event(seq, job_id, kind, ts, data, next(raws), gid))
            else:
                data = orjson.loads(blob) if blob else {}
                out.append(Event(seq, job_id, kind, ts, data, None, gid))
        return out

    def listen(self, job_id: str, after: int, listener: Listener) -> bool:
        tail = self._tails.get(job_id)
        if tail is None or tail.shown_seq > after or self.closed:
            return False
        self.hub.listen(job_id, listener)
        return True

    def is_live(self, job_id: str) -> bool:
        return job_id in self._tails

    async def wait(self, job_id: str, after: int) -> None:
        tail = self._tails.get(job_id)
        if tail is None or tail.shown_seq > after:
            return  # finished (or unknown): nothing more will come, let the caller re-read
        await self.hub.wait(job_id)

    async def read_all(
        self, after: int, *, output: bool = False, max_bytes: int = BATCH_BYTES
    ) -> list[Event]:
        if after + 1 >= self._global_first:
            start = after + 1 - self._global_first
            end = self._shown_gid + 1 - self._global_first
            if output:
                return take(self._global, start, max_bytes, end)
            events = [
                e for e in self._global[start : max(start, end)] if e.type in LIFECYCLE_EVENTS
            ]
            return take(events, 0, max_bytes, len(events))
        types = "" if output else f" AND type IN ({_LIFECYCLE_SQL})"
        sql = (
            f"SELECT {_EVENT_COLS} FROM events WHERE gid > ? AND gid <= ?{types} "
            "ORDER BY gid LIMIT 1000"
        )
        return await self._reading(self._read_events, sql, (after, self._shown_gid), max_bytes)

    async def wait_all(self, after: int) -> None:
        if self._shown_gid > after:
            return
        await self.hub.wait(_ALL)

    def last_gid(self) -> int:
        return self._shown_gid

    # -- output bytes -----------------------------------------------------------------------------

    async def output_size(self, job_id: str, stream: StreamName) -> int:
        tail = self._tails.get(job_id)
        if tail is not None:
            sizes = tail.shown_sizes
            return sizes["stdout"] + sizes["stderr"] if stream == "all" else sizes[stream]
        if stream == "all":
            return sum(self.files.size(job_id, s) for s in ("stdout", "stderr"))
        return self.files.size(job_id, stream)

    async def read_output(
        self, job_id: str, stream: StreamName, offset: int = 0, length: int | None = None
    ) -> bytes:
        size = await self.output_size(job_id, stream)
        if length is None:
            length = size - offset
        length = min(length, size - offset)
        if length <= 0:
            return b""
        if stream == "all":
            return await self._reading(self._read_combined, job_id, offset, length)
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        data = from_tail(tail, stream, offset, length) if tail is not None else None
        if data is not None:
            return data  # a follower at the end of the log: the bytes are in memory
        return await self._reading(lambda _db: self.files.read(job_id, stream, offset, length))

    def _read_combined(
        self, db: sqlite3.Connection, job_id: str, offset: int, length: int
    ) -> bytes:
        """Both streams in the order they came, from the event whose span holds `offset`."""
        start = db.execute(
            "SELECT seq FROM events WHERE job_id = ? AND pos IS NOT NULL AND pos <= ? "
            "ORDER BY pos DESC LIMIT 1",
            (job_id, offset),
        ).fetchone()
        if start is None:
            return b""
        spans = []
        want = length
        rows = db.execute(
            "SELECT type, offset, length, pos FROM events "
            "WHERE job_id = ? AND seq >= ? AND pos IS NOT NULL ORDER BY seq",
            (job_id, start[0]),
        )
        for type_, off, n, pos in rows:
            skip = max(0, offset - pos)
            take = min(n - skip, want)
            if take > 0:
                spans.append((job_id, type_, off + skip, take))
                want -= take
            if want <= 0:
                break
        rows.close()
        return b"".join(self.files.read_spans(spans))

    # -- recovery ---------------------------------------------------------------------------------

    async def _recover_output(self, job_id: str) -> None:
        """Bytes that reached a file but not the index (the server died in between) get their event."""
        for stream in ("stdout", "stderr"):
            row = self.db.execute(
                "SELECT COALESCE(MAX(offset + length), 0) FROM events WHERE job_id = ? AND type = ?",
                (job_id, stream),
            ).fetchone()
            indexed, on_disk = row[0], self.files.size(job_id, stream)
            if on_disk > indexed:
                extra = self.files.read(job_id, stream, indexed, on_disk - indexed)
                path = self.files.path(job_id, stream)
                with path.open("r+b") as f:
                    f.truncate(indexed)  # append() writes them again, now with their event
                self._tails.pop(job_id, None)
                await self.append(job_id, EventType(stream), raw=extra)

    async def _repair_unfinished_ends(self) -> None:
        """Finished jobs without their `complete` event (written by an older server that died
        between its separate writes) get it, with their final status event and byte counts."""
        broken = self.db.execute(
            "SELECT id FROM jobs WHERE status NOT IN (?, ?) AND COALESCE((SELECT type FROM events "
            "WHERE job_id = jobs.id ORDER BY seq DESC LIMIT 1), '') != 'complete' ORDER BY id",
            _ACTIVE,
        ).fetchall()
        for (job_id,) in broken:
            logger.warning("job %s ended without its complete event: adding it", job_id)
            await self._recover_output(job_id)
            job = await self.get_job(job_id)
            last = self.db.execute(
                "SELECT data FROM events WHERE job_id = ? AND type = 'status' "
                "ORDER BY seq DESC LIMIT 1",
                (job_id,),
            ).fetchone()
            events, rows = [], []
            if last is None or orjson.loads(last[0]).get("status") != job.status.value:
                data = {
                    "status": job.status.value,
                    **({"reason": job.reason} if job.reason else {}),
                }
                ev, row = self._stage(job_id, EventType.STATUS, data)
                events.append(ev)
                rows.append(row)
            cols: dict[str, Any] = {}
            events.append(self._stage_complete(job, cols, rows))
            await self._write(Write(rows, _update_job(job_id, cols), events), wait=True)


def _migrate(db: sqlite3.Connection) -> None:
    """Columns added since the first schema, added to a database made before them.

    `cols`, `rows`: a pty job's window size since its last resize (NULL: never resized, the
    size is its spec's). `extracted`, `progress`: the latest of each (see KEPT).
    """
    have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    added = (
        ("kind", "TEXT NOT NULL DEFAULT 'job'"),
        ("source", "BLOB"),
        ("cols", "INTEGER"),
        ("rows", "INTEGER"),
        ("extracted", "BLOB"),
        ("progress", "BLOB"),
    )
    for column, decl in added:
        if column not in have:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {decl}")
    # `find_source`, at each file a server starts to follow: no scan of every job.
    db.execute(
        "CREATE INDEX IF NOT EXISTS jobs_source_path ON jobs (json_extract(source, '$.path')) "
        "WHERE kind = 'source'"
    )


def _keep_latest(job_id: str, ev: Event) -> Callable[[sqlite3.Connection], None]:
    args: tuple[Any, ...]
    if ev.type is EventType.PROGRESS:
        sql, args = "UPDATE jobs SET progress = ? WHERE id = ?", (orjson.dumps(ev.data), job_id)
    else:
        sql = (
            "UPDATE jobs SET extracted = json_set(COALESCE(extracted, '{}'), "
            "'$.' || json_quote(?), ?) WHERE id = ?"
        )
        args = (str(ev.data.get("name")), str(ev.data.get("value")), job_id)

    def update(db: sqlite3.Connection) -> None:
        db.execute(sql, args)

    return update


def _update_job(job_id: str, cols: dict[str, Any]) -> Callable[[sqlite3.Connection], None]:
    def update(db: sqlite3.Connection) -> None:
        db.execute(
            f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?",
            (*cols.values(), job_id),
        )

    return update


def _resize_job(job_id: str, cols: int, rows: int) -> Callable[[sqlite3.Connection], None]:
    def update(db: sqlite3.Connection) -> None:
        db.execute("UPDATE jobs SET cols = ?, rows = ? WHERE id = ?", (cols, rows, job_id))

    return update


def _fetchall(db: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Row]:
    return db.execute(sql, args).fetchall()


def _forget(job_ids: list[str], floor: int) -> Callable[[sqlite3.Connection], list[str]]:
    """A write that forgets those of `job_ids` that are finished, as `delete_job` does one."""

    def forget(db: sqlite3.Connection) -> list[str]:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('gid_floor', ?)", (floor,))
        gone = [
            row[0]
            for row in db.execute(
                "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?)) "
                "AND status NOT IN (?, ?) RETURNING id",
                (orjson.dumps(job_ids), *_ACTIVE),
            )
        ]
        db.executemany("INSERT OR IGNORE INTO deleting (job_id) VALUES (?)", [(j,) for j in gone])
        return gone

    return forget


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tree_bytes(root: Path) -> int:
    """The sizes of the files under `root`, symlinks not followed."""
    total = 0
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                total += _tree_bytes(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue  # deleted meanwhile
    return total
