"""The embedded store: SQLite (WAL) for jobs and the event index, append-only files for output bytes.

Each unfinished job has a bounded in-memory tail of its newest events, so followers at the tail are
served from memory with the encodings cached on the events; anyone further behind reads from SQLite
and the files. All writes happen on the event loop's thread, one short autocommitted statement each.
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

from ..datadir import DB_NAME
from ..errors import JobFinished, JobNotFinished, JobNotFound, NameTaken
from ..hub import Hub, Listener
from ..models import (
    LIFECYCLE_EVENTS,
    OUTPUT_EVENTS,
    Event,
    EventType,
    Job,
    JobList,
    JobSpec,
    JobStatus,
    can_transition,
    complete_data,
    new_job_id,
)
from .base import ProcessInfo, StreamName
from .logfiles import OutputFiles

__all__ = ["SQLiteStore"]

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
    last_seq INTEGER NOT NULL DEFAULT 0
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
"""

_ALL = "*"  # the hub key of the firehose
_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_LIFECYCLE_SQL = ",".join(f"'{t.value}'" for t in sorted(LIFECYCLE_EVENTS))
_EVENT_COLS = "gid, job_id, seq, type, ts, data, offset, length"
_JOB_FIELDS = frozenset(
    {"started_at", "finished_at", "exit_code", "signal", "pid", "reason", "dropped_bytes"}
)


class _Tail:
    """The newest events of one job, contiguous by seq, and its running counters."""

    __slots__ = ("events", "first_seq", "last_seq", "nbytes", "pos", "sizes")

    def __init__(self, last_seq: int, sizes: dict[str, int]) -> None:
        self.events: list[Event] = []
        self.first_seq = last_seq + 1
        self.last_seq = last_seq
        self.nbytes = 0
        self.sizes = sizes
        self.pos = sizes["stdout"] + sizes["stderr"]

    def add(self, ev: Event, limit: int) -> None:
        self.events.append(ev)
        self.last_seq = ev.seq
        self.nbytes += ev.size
        if self.nbytes > limit and len(self.events) > 1:
            # Drop the older half at once: trimming amortises to O(1) per event.
            cut = len(self.events) // 2
            self.nbytes -= sum(e.size for e in self.events[:cut])
            del self.events[:cut]
            self.first_seq = self.events[0].seq


def _take(events: list[Event], start: int, max_bytes: int) -> list[Event]:
    out: list[Event] = []
    total = 0
    for i in range(start, len(events)):
        ev = events[i]
        if out and total + ev.size > max_bytes:
            break
        out.append(ev)
        total += ev.size
    return out


class SQLiteStore:
    def __init__(
        self,
        data_dir: Path,
        *,
        tick_seconds: float = 1.0,
        tail_bytes: int = 8 * 1024 * 1024,
        firehose_events: int = 20_000,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.files = OutputFiles(self.data_dir / "logs")
        self.hub = Hub(tick_seconds)
        self._tail_bytes = tail_bytes
        self._db: sqlite3.Connection | None = None
        self._tails: dict[str, _Tail] = {}
        self._finished_tails: OrderedDict[str, _Tail] = OrderedDict()
        self._global: list[Event] = []
        self._global_first = 1
        self._global_bytes = 0
        self._global_cap = firehose_events
        self._gid = 0
        self._job_cols: list[str] = []

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    @property
    def closed(self) -> bool:
        return self.hub.closed

    def wake_all(self) -> None:
        self.hub.wake_all()

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.files.open()
        db = sqlite3.connect(self.data_dir / DB_NAME, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL: a committed write survives the process being killed (not a power cut).
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db
        self._job_cols = [d[0] for d in db.execute("SELECT * FROM jobs LIMIT 0").description]
        # Deleting the newest job lowers MAX(gid); the floor kept at each delete keeps firehose
        # ids from being handed out twice (a resuming client would skip the new events).
        self._gid = db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(gid) FROM events), 0), "
            "COALESCE((SELECT value FROM meta WHERE key = 'gid_floor'), 0))"
        ).fetchone()[0]
        self._global_first = self._gid + 1
        for (job_id,) in db.execute(
            "SELECT id FROM jobs WHERE status IN (?, ?) ORDER BY id", _ACTIVE
        ).fetchall():
            await self._recover_output(job_id)
        self.hub.start()

    async def close(self) -> None:
        await self.hub.close()
        self.files.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- jobs -------------------------------------------------------------------------------------

    async def create_job(self, spec: JobSpec) -> Job:
        if spec.name is not None:
            taken = self.db.execute(
                "SELECT id FROM jobs WHERE name = ? AND status IN (?, ?)", (spec.name, *_ACTIVE)
            ).fetchone()
            if taken:
                raise NameTaken(
                    f"the name {spec.name!r} is held by job {taken[0]}, which has not finished; "
                    "choose another name or wait for it to end"
                )
        job_id = new_job_id()
        self.db.execute(
            "INSERT INTO jobs (id, name, status, spec, created_at) VALUES (?, ?, ?, ?, ?)",
            (job_id, spec.name, JobStatus.QUEUED.value, spec.model_dump_json(), time.time()),
        )
        self._tails[job_id] = _Tail(0, {"stdout": 0, "stderr": 0})
        await self.append(job_id, EventType.STATUS, {"status": JobStatus.QUEUED.value})
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
        tail = self._tails.get(rec["id"])
        if tail is not None:
            rec["last_seq"] = tail.last_seq
            rec["stdout_bytes"] = tail.sizes["stdout"]
            rec["stderr_bytes"] = tail.sizes["stderr"]
        return Job(
            command=spec["command"],
            argv=JobSpec.model_validate(spec).resolved_argv(),
            cwd=spec["cwd"],
            pty=spec["pty"],
            stdin=spec["stdin"],
            timeout=spec["timeout"],
            labels=spec["labels"],
            **rec,
        )

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        label: dict[str, str] | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobList:
        where, args = ["1"], []
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
        rows = self.db.execute(
            f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
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

    async def set_status(self, job_id: str, status: JobStatus, **fields: Any) -> Job:
        job = await self.get_job(job_id)
        if not can_transition(job.status, status):
            raise JobFinished(
                f"job {job_id} is already {job.status.value}; it cannot become {status.value}"
            )
        unknown = set(fields) - _JOB_FIELDS
        if unknown:
            raise ValueError(f"set_status cannot change {sorted(unknown)}")
        cols = {"status": status.value, **fields}
        self.db.execute(
            f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?",
            (*cols.values(), job_id),
        )
        data: dict[str, Any] = {"status": status.value}
        if fields.get("reason"):
            data["reason"] = fields["reason"]
        await self.append(job_id, EventType.STATUS, data)
        job = await self.get_job(job_id)
        if status.is_final:
            # In the same step as the final status, so nobody sees a finished job without its end.
            await self.append(job_id, EventType.COMPLETE, complete_data(job))
            job = await self.get_job(job_id)
        return job

    async def set_process(self, job_id: str, info: ProcessInfo) -> None:
        self.db.execute(
            "UPDATE jobs SET pid = ?, pgid = ?, proc_start = ? WHERE id = ?", (*info, job_id)
        )

    async def delete_job(self, job_id: str) -> None:
        job = await self.get_job(job_id)
        if not job.status.is_final:
            raise JobNotFinished(
                f"job {job.id} is still {job.status.value}; cancel it first, then delete it"
            )
        with self.db:  # one transaction: the floor is never lost while the events go
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('gid_floor', ?)", (self._gid,)
            )
            self.db.execute("DELETE FROM events WHERE job_id = ?", (job.id,))
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job.id,))
        self._finished_tails.pop(job.id, None)
        self.files.delete(job.id)

    # -- events -----------------------------------------------------------------------------------

    def _tail(self, job_id: str) -> _Tail:
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if tail is not None:
            return tail
        row = self.db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?", (job_id,)
        ).fetchone()
        tail = _Tail(row[0], {s: self.files.size(job_id, s) for s in ("stdout", "stderr")})
        self._tails[job_id] = tail
        return tail

    async def append(
        self,
        job_id: str,
        type: EventType,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
    ) -> Event:
        tail = self._tail(job_id)
        seq = tail.last_seq + 1
        self._gid += 1
        offset = length = pos = None
        if type in OUTPUT_EVENTS:
            raw = raw or b""
            offset = self.files.append(job_id, type.value, raw)
            length = len(raw)
            pos = tail.pos
            tail.pos += length
            tail.sizes[type.value] = offset + length
            data = {"offset": offset, "length": length}
            blob = None
        else:
            data = data or {}
            blob = orjson.dumps(data)
        ev = Event(seq, job_id, type, time.time(), data, raw, self._gid)
        self.db.execute(
            "INSERT INTO events (gid, job_id, seq, type, ts, data, offset, length, pos) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ev.gid, job_id, seq, type.value, ev.ts, blob, offset, length, pos),
        )
        tail.add(ev, self._tail_bytes)
        self._add_global(ev)
        if type is EventType.COMPLETE:
            self._finish(job_id, tail)
        self.hub.notify(job_id, ev)
        self.hub.notify(_ALL)
        return ev

    def _finish(self, job_id: str, tail: _Tail) -> None:
        self.db.execute(
            "UPDATE jobs SET last_seq = ?, stdout_bytes = ?, stderr_bytes = ? WHERE id = ?",
            (tail.last_seq, tail.sizes["stdout"], tail.sizes["stderr"], job_id),
        )
        self.files.finish(job_id)
        self._tails.pop(job_id, None)
        # Keep a few finished tails: their followers are still catching up on them.
        self._finished_tails[job_id] = tail
        while len(self._finished_tails) > 16:
            self._finished_tails.popitem(last=False)

    def _add_global(self, ev: Event) -> None:
        self._global.append(ev)
        self._global_bytes += ev.size
        if len(self._global) > self._global_cap or self._global_bytes > self._tail_bytes:
            cut = len(self._global) // 2
            self._global_bytes -= sum(e.size for e in self._global[:cut])
            del self._global[:cut]
            self._global_first = self._global[0].gid

    async def read(self, job_id: str, after: int, max_bytes: int = 256 * 1024) -> list[Event]:
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if tail is not None and after + 1 >= tail.first_seq:
            return _take(tail.events, after + 1 - tail.first_seq, max_bytes)
        rows = self.db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT 1000",
            (job_id, after),
        ).fetchall()
        if not rows and tail is None:
            await self.get_job(job_id)  # raises JobNotFound for a job that does not exist
        return self._events_from_rows(rows, max_bytes)

    def _events_from_rows(self, rows: list[tuple[Any, ...]], max_bytes: int) -> list[Event]:
        out: list[Event] = []
        total = 0
        for gid, job_id, seq, type_, ts, blob, offset, length in rows:
            kind = EventType(type_)
            if kind in OUTPUT_EVENTS:
                raw = self.files.read(job_id, type_, offset, length)
                ev = Event(seq, job_id, kind, ts, {"offset": offset, "length": length}, raw, gid)
            else:
                ev = Event(seq, job_id, kind, ts, orjson.loads(blob) if blob else {}, None, gid)
            if out and total + ev.size > max_bytes:
                break
            out.append(ev)
            total += ev.size
        return out

    def listen(self, job_id: str, after: int, listener: Listener) -> bool:
        tail = self._tails.get(job_id)
        if tail is None or tail.last_seq > after or self.closed:
            return False
        self.hub.listen(job_id, listener)
        return True

    def is_live(self, job_id: str) -> bool:
        return job_id in self._tails

    async def wait(self, job_id: str, after: int) -> None:
        tail = self._tails.get(job_id)
        if tail is None or tail.last_seq > after:
            return  # finished (or unknown): nothing more will come, let the caller re-read
        await self.hub.wait(job_id)

    async def read_all(
        self, after: int, *, output: bool = False, max_bytes: int = 256 * 1024
    ) -> list[Event]:
        if after + 1 >= self._global_first:
            start = after + 1 - self._global_first
            events = (
                self._global
                if output
                else [e for e in self._global[start:] if e.type in LIFECYCLE_EVENTS]
            )
            return _take(events, start if output else 0, max_bytes)
        types = "" if output else f" AND type IN ({_LIFECYCLE_SQL})"
        rows = self.db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE gid > ?{types} ORDER BY gid LIMIT 1000",
            (after,),
        ).fetchall()
        return self._events_from_rows(rows, max_bytes)

    async def wait_all(self, after: int) -> None:
        if self._gid > after:
            return
        await self.hub.wait(_ALL)

    def last_gid(self) -> int:
        return self._gid

    # -- output bytes -----------------------------------------------------------------------------

    async def output_size(self, job_id: str, stream: StreamName) -> int:
        tail = self._tails.get(job_id)
        if stream == "all":
            return (
                tail.pos
                if tail is not None
                else sum(self.files.size(job_id, s) for s in ("stdout", "stderr"))
            )
        return tail.sizes[stream] if tail is not None else self.files.size(job_id, stream)

    async def read_output(
        self, job_id: str, stream: StreamName, offset: int = 0, length: int | None = None
    ) -> bytes:
        size = await self.output_size(job_id, stream)
        if length is None:
            length = size - offset
        length = min(length, size - offset)
        if length <= 0:
            return b""
        if stream != "all":
            return self.files.read(job_id, stream, offset, length)
        return self._read_combined(job_id, offset, length)

    def _read_combined(self, job_id: str, offset: int, length: int) -> bytes:
        """Both streams in the order they came, from the event whose span holds `offset`."""
        start = self.db.execute(
            "SELECT seq FROM events WHERE job_id = ? AND pos IS NOT NULL AND pos <= ? "
            "ORDER BY pos DESC LIMIT 1",
            (job_id, offset),
        ).fetchone()
        if start is None:
            return b""
        parts: list[bytes] = []
        want = length
        rows = self.db.execute(
            "SELECT type, offset, length, pos FROM events "
            "WHERE job_id = ? AND seq >= ? AND pos IS NOT NULL ORDER BY seq",
            (job_id, start[0]),
        )
        for type_, off, n, pos in rows:
            skip = max(0, offset - pos)
            take = min(n - skip, want)
            if take > 0:
                parts.append(self.files.read(job_id, type_, off + skip, take))
                want -= take
            if want <= 0:
                break
        return b"".join(parts)

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
