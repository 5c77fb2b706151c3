"""The Redis store: jobs, events and output bytes in Redis, shared by every process that uses it.

Keys (all under the store's prefix):

- `job:{id}`: the job's record, a hash (the columns of `records`; `x:{name}` the latest value of
  each extractor); `jobs` every job id, and `ix:{field}:{value}` the ids of each status, kind,
  name, label and source path: sorted sets of score 0, so ids (which sort by creation) come in
  order, newest first with ZREVRANGEBYLEX.
- `ev:{id}`: the job's events, a stream whose entry ids are `<seq>-0`: the resume cursor is the
  entry id on every node. Output events hold their bytes (`r`), their offset in their stream
  (`o`), their length (`n`) and their position in both streams together (`p`); `off:{id}:{stream}`
  (and `:all`, by position) index the entries by offset, so a byte range starts at the right one.
- `all`: the firehose, a stream of `(job, seq, type)` whose entry ids are the events' `gid`s,
  counted by `gid`; one Lua script numbers an event and adds it to both streams, so the firehose
  has no gap whatever process writes.
- `name:{name}`: the job that holds the name while it has not finished; `finished`: finished jobs
  by the time they ended; `output_bytes`: the output kept.

Each job is written by one process (the one that runs it), which numbers its events as the SQLite
store does, in a `Tail` on the loop, and sends its writes in order, a transaction (MULTI) per
batch, from one writer task. Its followers here are served from that tail and handed each event
once it has committed. A job written elsewhere is followed through one `XREAD BLOCK` per job in
this process, whatever the number of its followers here, feeding the same hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..config import safe_store_url
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
from .base import BATCH_BYTES, DiskUsage, FinishedJob, ProcessInfo, StreamName
from .records import (
    build_job,
    check_deletable,
    check_fields,
    check_transition,
    name_taken,
    parse_source,
)
from .tail import TAIL_BYTES, Tail, from_tail, take

__all__ = ["RedisStore"]

logger = logging.getLogger("jobcast.store")

_ALL = "*"  # the hub key of the firehose
_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
_FLOATS = frozenset({"created_at", "started_at", "finished_at"})
_INTS = frozenset(
    {
        "exit_code",
        "pid",
        "pgid",
        "proc_start",
        "stdout_bytes",
        "stderr_bytes",
        "dropped_bytes",
        "last_seq",
        "cols",
        "rows",
    }
)
#: the record's fields a `Job` does not show
_HIDDEN = ("pgid", "proc_start")
#: numbers each event (`gid`) and adds it to the job's stream and to the firehose, at once;
#: ARGV: the job id, then 8 per event (`_event_args`): seq, type, ts, data, raw, offset, length, pos
_APPEND = """
local gids = {}
for b = 2, #ARGV, 8 do
  local gid = redis.call('INCR', KEYS[1])
  local id = ARGV[b] .. '-0'
  if ARGV[b + 5] == '' then
    redis.call('XADD', KEYS[3], id, 'g', gid, 't', ARGV[b + 1], 'ts', ARGV[b + 2], 'd', ARGV[b + 3])
  else
    redis.call('XADD', KEYS[3], id, 'g', gid, 't', ARGV[b + 1], 'ts', ARGV[b + 2],
      'r', ARGV[b + 4], 'o', ARGV[b + 5], 'n', ARGV[b + 6], 'p', ARGV[b + 7])
  end
  redis.call('XADD', KEYS[2], gid .. '-0', 'j', ARGV[1], 's', ARGV[b], 't', ARGV[b + 1])
  gids[#gids + 1] = gid
end
return gids
"""
#: frees a name only if this job still holds it
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
#: entries asked for at once when reading a stream
_CHUNK = 256
#: jobs forgotten per transaction by `delete_jobs`
_FORGET_CHUNK = 200

#: commands added to a write's transaction (a redis-py pipeline)
Ops = Callable[[Any], object]


@dataclass
class _Write:
    """One step: its events (each with its position in both streams, for output) and the other
    commands that go with them, committed together."""

    job_id: str
    events: list[tuple[Event, int | None]]
    ops: Ops | None = None
    future: asyncio.Future[None] | None = None


@dataclass
class _Watch:
    """A job written by another process, followed here: one XREAD for all its followers, and
    the events it read in a tail, where they are read again and their encodings shared."""

    tail: Tail
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def seen(self) -> int:
        return self.tail.shown_seq


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "jobcast:",
        tick_seconds: float = 1.0,
        tail_bytes: int = TAIL_BYTES,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.hub = Hub(tick_seconds)
        self._tick = tick_seconds
        self._tail_bytes = tail_bytes
        self._redis: aioredis.Redis | None = None
        #: the unfinished jobs this process writes, and the last events of a few it finished
        self._tails: dict[str, Tail] = {}
        self._finished_tails: OrderedDict[str, Tail] = OrderedDict()
        self._status: dict[str, JobStatus] = {}
        self._pending: list[_Write] = []
        self._due = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._watches: dict[str, _Watch] = {}
        self._firehose: asyncio.Task[None] | None = None
        self._shown_gid = 0
        self._output_appended = 0

    # -- keys -------------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _ix(self, field_: str, value: str) -> str:
        return self._k("ix", field_, value)

    def _label_ix(self, key: str, value: str) -> str:
        return self._ix("label", orjson.dumps([key, value]).decode())

    @property
    def redis(self) -> Any:
        # Any: redis-py types each reply as maybe str, maybe bytes (decode_responses decides)
        # and each command as maybe sync: replies are typed where they are parsed (`_event`,
        # `_job`), and this client never decodes.
        if self._redis is None:
            raise RuntimeError("the store is not open")
        return self._redis

    @property
    def closed(self) -> bool:
        return self.hub.closed

    def wake_all(self) -> None:
        self.hub.wake_all()

    def wake_firehose(self) -> None:
        self.hub.notify(_ALL)

    # -- open and close ---------------------------------------------------------------------------

    async def open(self) -> None:
        self._redis = aioredis.Redis.from_url(self.url)
        try:
            gid = await self._redis.get(self._k("gid"))
        except RedisError as e:
            await self._redis.aclose()
            self._redis = None
            raise ConnectionError(_unreachable(self.url, e)) from e
        self._shown_gid = int(gid or 0)
        self._writer = asyncio.create_task(self._write_loop(), name="jobcast-redis-writer")
        self._firehose = asyncio.create_task(self._watch_firehose(), name="jobcast-redis-firehose")
        self.hub.start()

    async def close(self) -> None:
        await self.hub.close()
        if self._pending:
            # What was submitted before the close is written: its writers wait for it.
            await asyncio.gather(
                *(w.future for w in self._pending if w.future is not None),
                return_exceptions=True,
            )
        tasks = [self._writer, self._firehose, *(w.task for w in self._watches.values())]
        for task in tasks:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
        self._writer = self._firehose = None
        self._watches.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def drop(self) -> None:
        """Delete every key of this store's prefix (tests; a store closed or not)."""
        client = aioredis.Redis.from_url(self.url)
        try:
            keys = [k async for k in client.scan_iter(match=self.prefix + "*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()

    # -- the writer -------------------------------------------------------------------------------

    async def _submit(self, write: _Write) -> None:
        """Queue `write` after those before it; until it has committed (its error raised)."""
        write.future = asyncio.get_running_loop().create_future()
        self._pending.append(write)
        self._due.set()
        await write.future

    async def _write_loop(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await self._commit(batch)

    async def _commit(self, batch: list[_Write]) -> None:
        """One transaction for the batch, in order; then its events shown, its writers answered."""
        pipe, spans = self._transaction(batch)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as e:
            logger.error("a write to Redis failed: %s", e)
            replies = [e] * len(pipe.command_stack)
        shown = False
        for w, (start, end) in zip(batch, spans, strict=True):
            error = next((r for r in replies[start:end] if isinstance(r, Exception)), None)
            if error is None:
                for (ev, _), gid in zip(w.events, replies[start] if w.events else (), strict=True):
                    ev.gid = int(gid)
                    self._show(ev)
                    shown = True
            else:
                # Numbered again from what Redis has at the next write: no hole in the seqs.
                self._tails.pop(w.job_id, None)
            if w.future is not None and not w.future.done():
                if error is not None:
                    w.future.set_exception(error)
                else:
                    w.future.set_result(None)
        if shown:
            self.hub.notify(_ALL)

    def _transaction(self, batch: list[_Write]) -> tuple[Any, list[tuple[int, int]]]:
        """The batch's commands in one MULTI, and where each write's replies are in its replies
        (its script's first)."""
        pipe = self.redis.pipeline(transaction=True)
        spans: list[tuple[int, int]] = []
        for w in batch:
            start = len(pipe.command_stack)
            if w.events:
                args: list[Any] = [w.job_id]
                for ev, pos in w.events:
                    args += _event_args(ev, pos)
                keys = (self._k("gid"), self._k("all"), self._k("ev", w.job_id))
                pipe.eval(_APPEND, 3, *keys, *args)
            if w.ops is not None:
                w.ops(pipe)
            if w.events:
                self._event_ops(pipe, w)
            spans.append((start, len(pipe.command_stack)))
        return pipe, spans

    def _event_ops(self, pipe: Any, w: _Write) -> None:
        """What a write's events change beside the streams: counts and the offset index."""
        job = self._k("job", w.job_id)
        counts: dict[str, int] = {"last_seq": w.events[-1][0].seq}
        added = 0
        for ev, pos in w.events:
            if ev.type in OUTPUT_EVENTS:
                stream, offset = ev.type.value, ev.data["offset"]
                pipe.zadd(self._k("off", w.job_id, stream), {str(ev.seq): offset})
                pipe.zadd(self._k("off", w.job_id, "all"), {str(ev.seq): pos or 0})
                counts[f"{stream}_bytes"] = offset + ev.data["length"]
                added += ev.data["length"]
        pipe.hset(job, mapping=counts)
        if added:
            pipe.incrby(self._k("output_bytes"), added)

    def _show(self, ev: Event) -> None:
        self._shown_gid = max(self._shown_gid, ev.gid)
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

    def _finish(self, job_id: str, tail: Tail) -> None:
        self._tails.pop(job_id, None)
        tail.release()
        self._finished_tails[job_id] = tail
        while len(self._finished_tails) > 16:
            self._finished_tails.popitem(last=False)

    async def _load_tail(self, job_id: str) -> Tail:
        """The tail of a job this process writes, made from its record at its first write here."""
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if tail is not None:
            return tail
        last, out, err = await self.redis.hmget(
            self._k("job", job_id), ["last_seq", "stdout_bytes", "stderr_bytes"]
        )
        if last is None:
            raise JobNotFound.for_ref(job_id)
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if tail is None:  # not made by another write meanwhile
            sizes = {"stdout": int(out or 0), "stderr": int(err or 0)}
            tail = self._tails[job_id] = Tail(int(last), sizes, self._tail_bytes)
        return tail

    def _stage(
        self,
        job_id: str,
        type: EventType,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
        ts: float | None = None,
    ) -> tuple[Event, int | None]:
        """The event numbered in the job's tail (loaded), and its position in both streams."""
        tail = self._tails.get(job_id) or self._finished_tails[job_id]
        pos = None
        if type in OUTPUT_EVENTS:
            raw = raw or b""
            offset = tail.sizes[type.value]
            data = {"offset": offset, "length": len(raw)}
            self._output_appended += len(raw)
            pos = tail.pos
            tail.pos += len(raw)
            tail.sizes[type.value] = offset + len(raw)
        else:
            data, raw = data or {}, None
        ev = Event(tail.last_seq + 1, job_id, type, time.time() if ts is None else ts, data, raw)
        tail.add(ev)
        return ev, pos

    # -- jobs -------------------------------------------------------------------------------------

    async def _claim_name(self, name: str, job_id: str) -> None:
        key = self._k("name", name)
        if await self.redis.set(key, job_id, nx=True):
            return
        holder = (await self.redis.get(key) or b"").decode()
        status = await self.redis.hget(self._k("job", holder), "status")
        if status is not None and JobStatus(status.decode()) in _ACTIVE:
            raise name_taken(name, holder)
        await self.redis.set(key, job_id)  # its holder is gone (a process died in between)

    async def create_job(self, spec: JobSpec, *, source: SourceInfo | None = None) -> Job:
        job_id = new_job_id()
        if spec.name is not None:
            await self._claim_name(spec.name, job_id)
        kind = "job" if source is None else "source"
        rec: dict[str, Any] = {
            "id": job_id,
            "status": JobStatus.QUEUED.value,
            "spec": spec.model_dump_json(),
            "created_at": repr(time.time()),
            "kind": kind,
            "last_seq": 0,
            "stdout_bytes": 0,
            "stderr_bytes": 0,
            "dropped_bytes": 0,
        }
        indexes = [self._k("jobs"), self._ix("status", "queued"), self._ix("kind", kind)]
        if spec.name is not None:
            rec["name"] = spec.name
            indexes.append(self._ix("name", spec.name))
        if source is not None:
            rec["source"] = source.model_dump_json()
            indexes.append(self._ix("source", source.path))
        indexes += [self._label_ix(k, v) for k, v in spec.labels.items()]
        self._tails[job_id] = Tail(0, {"stdout": 0, "stderr": 0}, self._tail_bytes)
        self._status[job_id] = JobStatus.QUEUED
        ev = self._stage(job_id, EventType.STATUS, {"status": JobStatus.QUEUED.value})

        def insert(pipe: Any) -> None:
            pipe.hset(self._k("job", job_id), mapping=rec)
            for key in indexes:
                pipe.zadd(key, {job_id: 0})

        await self._submit(_Write(job_id, [ev], insert))
        return await self.get_job(job_id)

    async def _record(self, job_id: str) -> dict[bytes, bytes]:
        rec: dict[bytes, bytes] = await self.redis.hgetall(self._k("job", job_id))
        return rec

    async def get_job(self, ref: str) -> Job:
        rec = await self._record(ref)
        if not rec:
            holder = await self.redis.get(self._k("name", ref))
            if holder is None:
                newest = await self.redis.zrevrangebylex(self._ix("name", ref), "+", "-", 0, 1)
                holder = newest[0] if newest else None
            if holder is not None:
                rec = await self._record(holder.decode())
        if not rec:
            raise JobNotFound.for_ref(ref)
        return self._job(rec)

    def _job(self, raw: dict[bytes, bytes]) -> Job:
        rec: dict[str, Any] = {}
        extracted: dict[str, str] = {}
        for k, v in raw.items():
            key, value = k.decode(), v.decode()
            if key.startswith("x:"):
                extracted[key[2:]] = value
            elif key in _FLOATS:
                rec[key] = float(value)
            elif key in _INTS:
                rec[key] = int(value)
            else:
                rec[key] = value
        spec = orjson.loads(rec.pop("spec"))
        for key in _HIDDEN:
            rec.pop(key, None)
        rec["source"] = parse_source(rec.get("source"))
        rec["extracted"] = extracted
        rec["progress"] = orjson.loads(rec["progress"]) if "progress" in rec else None
        tail = self._tails.get(rec["id"])
        if tail is not None:
            # Shown as its events show it here: a final status always with a readable `complete`.
            rec["last_seq"] = tail.shown_seq
            rec["stdout_bytes"] = tail.shown_sizes["stdout"]
            rec["stderr_bytes"] = tail.shown_sizes["stderr"]
            if tail.shown_status is not None and rec["status"] != tail.shown_status:
                rec["status"] = tail.shown_status
                if not JobStatus(tail.shown_status).is_final:
                    for key in ("exit_code", "signal", "finished_at"):
                        rec.pop(key, None)
        return build_job(rec, spec)

    async def _jobs(self, ids: Sequence[str]) -> list[Job]:
        """The jobs of `ids` that still exist, in that order, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._k("job", job_id))
        return [self._job(rec) for rec in await pipe.execute() if rec]

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
        # The narrowest index that applies gives the ids, newest first; the other filters are
        # checked on the jobs.
        labels = list((label or {}).items())
        if name is not None:
            index = self._ix("name", name)
        elif labels:
            index = self._label_ix(*labels[0])
        elif status is not None:
            index = self._ix("status", status.value)
        elif kind is not None:
            index = self._ix("kind", kind)
        else:
            index = self._k("jobs")

        def keep(job: Job) -> bool:
            return (
                (status is None or job.status is status)
                and (name is None or job.name == name)
                and (kind is None or job.kind == kind)
                and all(job.labels.get(k) == v for k, v in labels)
            )

        filters = sum(x is not None for x in (status, name, kind)) + len(labels)
        # One filter is the index itself: every id it gives is kept, so a page takes one read.
        count = limit + 1 if filters <= 1 else max(limit + 1, _CHUNK)
        found: list[Job] = []
        top = "+" if cursor is None else "(" + cursor
        while len(found) <= limit:
            ids = await self.redis.zrevrangebylex(index, top, "-", 0, count)
            if not ids:
                break
            found += [j for j in await self._jobs([i.decode() for i in ids]) if keep(j)]
            if len(ids) < count:
                break  # the index's end
            top = "(" + ids[-1].decode()
        jobs = found[:limit]
        return JobList(jobs=jobs, next_cursor=jobs[-1].id if len(found) > limit else None)

    async def unfinished_jobs(self) -> list[tuple[Job, ProcessInfo | None]]:
        ids: list[str] = []
        for status in _ACTIVE:
            ids += [i.decode() for i in await self.redis.zrange(self._ix("status", status), 0, -1)]
        out: list[tuple[Job, ProcessInfo | None]] = []
        for job_id in sorted(ids):
            pid, pgid, start = await self.redis.hmget(
                self._k("job", job_id), ["pid", "pgid", "proc_start"]
            )
            info = (
                (int(pid), int(pgid), int(start))
                if pid is not None and pgid is not None and start is not None
                else None
            )
            with contextlib.suppress(JobNotFound):
                out.append((await self.get_job(job_id), info))
        return out

    async def job_spec(self, job_id: str) -> JobSpec:
        blob = await self.redis.hget(self._k("job", job_id), "spec")
        if blob is None:
            raise JobNotFound.for_ref(job_id)
        return JobSpec.model_validate_json(blob)

    async def set_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        process: ProcessInfo | None = None,
        **fields: Any,
    ) -> Job:
        check_fields(fields)
        tail = await self._load_tail(job_id)
        current = self._status.get(job_id)
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
        events = [self._stage(job_id, EventType.STATUS, data)]
        ended: Job | None = None
        if job is not None and status.is_final:
            counts = {
                "last_seq": tail.last_seq + 1,
                "stdout_bytes": tail.sizes["stdout"],
                "stderr_bytes": tail.sizes["stderr"],
            }
            ended = job.model_copy(update={"status": status, **fields, **counts})
            events.append(self._stage(job_id, EventType.COMPLETE, complete_data(ended)))
        old = current

        def update(pipe: Any) -> None:
            self._set_fields(pipe, job_id, cols)
            pipe.zrem(self._ix("status", old.value), job_id)
            pipe.zadd(self._ix("status", status.value), {job_id: 0})
            if ended is not None:
                end = ended.finished_at or ended.started_at or ended.created_at
                pipe.zadd(self._k("finished"), {job_id: end})
                if ended.name is not None:
                    pipe.eval(_RELEASE, 1, self._k("name", ended.name), job_id)

        # Status, `complete` event and byte counts in one transaction: never one without the other.
        await self._submit(_Write(job_id, events, update))
        return await self.get_job(job_id)

    def _set_fields(self, pipe: Any, job_id: str, cols: dict[str, Any]) -> None:
        key = self._k("job", job_id)
        present = {k: _encode(v) for k, v in cols.items() if v is not None}
        if present:
            pipe.hset(key, mapping=present)
        absent = [k for k, v in cols.items() if v is None]
        if absent:
            pipe.hdel(key, *absent)

    async def set_process(self, job_id: str, info: ProcessInfo) -> None:
        cols = dict(zip(("pid", "pgid", "proc_start"), info, strict=True))
        await self._submit(_Write(job_id, [], lambda pipe: self._set_fields(pipe, job_id, cols)))

    async def find_source(self, path: str) -> Job | None:
        newest = await self.redis.zrevrangebylex(self._ix("source", path), "+", "-", 0, 1)
        if not newest:
            return None
        with contextlib.suppress(JobNotFound):
            return await self.get_job(newest[0].decode())
        return None

    async def set_source(
        self, job_id: str, source: SourceInfo, notice: dict[str, Any] | None = None
    ) -> None:
        blob = source.model_dump_json()
        events = []
        if notice is not None:
            await self._load_tail(job_id)
            events.append(self._stage(job_id, EventType.ERROR, notice))

        def update(pipe: Any) -> None:
            pipe.hset(self._k("job", job_id), "source", blob)

        await self._submit(_Write(job_id, events, update))

    async def delete_job(self, job_id: str) -> None:
        job = await self.get_job(job_id)
        check_deletable(job, live=job.id in self._tails)
        await self._forget([job])

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[str]:
        deleted: list[str] = []
        for start in range(0, len(job_ids), _FORGET_CHUNK):
            chunk = [j for j in job_ids[start : start + _FORGET_CHUNK] if j not in self._tails]
            done = [j for j in await self._jobs(chunk) if j.status.is_final]
            await self._forget(done)
            deleted += [j.id for j in done]
        order = {j: i for i, j in enumerate(job_ids)}
        return sorted(deleted, key=order.__getitem__)

    async def _forget(self, jobs: list[Job]) -> None:
        """Delete the jobs' records, events, output and index entries, in one transaction.

        Their firehose entries stay (readers skip them) until the firehose is trimmed."""
        if not jobs:
            return
        pipe = self.redis.pipeline(transaction=True)
        for job in jobs:
            j = job.id
            pipe.delete(
                self._k("job", j),
                self._k("ev", j),
                *(self._k("off", j, s) for s in ("stdout", "stderr", "all")),
            )
            indexes = [
                self._k("jobs"),
                self._ix("status", job.status.value),
                self._ix("kind", job.kind),
                *(self._label_ix(k, v) for k, v in job.labels.items()),
            ]
            if job.name is not None:
                indexes.append(self._ix("name", job.name))
            if job.source is not None:
                indexes.append(self._ix("source", job.source.path))
            for key in (*indexes, self._k("finished")):
                pipe.zrem(key, j)
            pipe.decrby(self._k("output_bytes"), job.stdout_bytes + job.stderr_bytes)
        await pipe.execute()
        for job in jobs:
            self._finished_tails.pop(job.id, None)

    async def finished_jobs(self) -> list[FinishedJob]:
        ended = await self.redis.zrange(self._k("finished"), 0, -1, withscores=True)
        pipe = self.redis.pipeline(transaction=False)
        for job_id, _ in ended:
            pipe.hmget(self._k("job", job_id.decode()), ["name", "stdout_bytes", "stderr_bytes"])
        out: list[FinishedJob] = []
        for (job_id, at), (name, o, e) in zip(ended, await pipe.execute(), strict=True):
            if o is not None:
                label = None if name is None else name.decode()
                out.append(FinishedJob(job_id.decode(), label, at, int(o) + int(e or 0)))
        return out

    async def disk_usage(self) -> DiskUsage:
        # Redis keeps everything in its own memory (and its files, if it persists): only the
        # output bytes are this store's to count.
        output = int(await self.redis.get(self._k("output_bytes")) or 0)
        return {
            "data_dir_bytes": output,
            "db_bytes": 0,
            "db_free_bytes": 0,
            "wal_bytes": 0,
            "output_bytes": output,
        }

    async def count_jobs(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in JobStatus:
            pipe.zcard(self._ix("status", status.value))
        counts = await pipe.execute()
        return {s.value: n for s, n in zip(JobStatus, counts, strict=True) if n}

    @property
    def output_bytes_appended(self) -> int:
        return self._output_appended

    # -- events -----------------------------------------------------------------------------------

    async def append(
        self,
        job_id: str,
        type: EventType,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
        *,
        ts: float | None = None,
    ) -> Event:
        await self._load_tail(job_id)
        staged = self._stage(job_id, type, data, raw, ts)
        ev = staged[0]
        ops: Ops | None = None
        key = self._k("job", job_id)
        if type is EventType.RESIZE:
            # The job shows its last window size; its spec keeps the one it started with.
            size = {"cols": ev.data["cols"], "rows": ev.data["rows"]}
            ops = lambda pipe: pipe.hset(key, mapping=size)  # noqa: E731
        elif type is EventType.PROGRESS:
            progress = orjson.dumps(ev.data)
            ops = lambda pipe: pipe.hset(key, "progress", progress)  # noqa: E731
        elif type is EventType.EXTRACTION:
            found = ("x:" + str(ev.data.get("name")), str(ev.data.get("value")))
            ops = lambda pipe: pipe.hset(key, *found)  # noqa: E731
        await self._submit(_Write(job_id, [staged], ops))
        return ev

    async def read(self, job_id: str, after: int, max_bytes: int = BATCH_BYTES) -> list[Event]:
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        watch = self._watches.get(job_id) if tail is None else None
        if watch is not None and watch.tail.first_seq <= after + 1 <= watch.tail.shown_seq:
            tail = watch.tail  # read by this process's XREAD already: from memory
        if tail is not None and after + 1 >= tail.first_seq:
            first = tail.first_seq
            start, end = after + 1 - first, tail.shown_seq + 1 - first
            return take(tail.events, start, max_bytes, end, aligned=True)
        # Older than the tail, or a job written elsewhere: from its stream, up to what is shown.
        upto = f"{tail.shown_seq}-0" if tail is not None else "+"
        events = await self._read_stream(job_id, after, upto, max_bytes)
        if not events and tail is None and not await self.redis.exists(self._k("job", job_id)):
            raise JobNotFound.for_ref(job_id)
        return events

    async def _read_stream(self, job_id: str, after: int, upto: str, max_bytes: int) -> list[Event]:
        out: list[Event] = []
        total, start, count = 0, after + 1, 16
        while True:
            entries = await self.redis.xrange(self._k("ev", job_id), f"{start}-0", upto, count)
            for entry_id, fields in entries:
                ev = _event(job_id, entry_id, fields)
                if out and total + ev.size > max_bytes:
                    return out
                out.append(ev)
                total += ev.size
            if len(entries) < count:
                return out
            start, count = out[-1].seq + 1, min(count * 4, _CHUNK)

    def listen(self, job_id: str, after: int, listener: Listener) -> bool:
        if self.closed:
            return False
        tail = self._tails.get(job_id)
        if tail is not None:
            # Only exactly at what is shown: a reader that got past it (from the stream) waits.
            if tail.shown_seq != after:
                return False
        elif job_id not in self._finished_tails:
            watch = self._watch(job_id, after)
            if watch is None or watch.seen != after:
                return False
        else:
            return False
        self.hub.listen(job_id, listener)
        return True

    def is_live(self, job_id: str) -> bool:
        return job_id in self._tails or job_id in self._watches

    async def wait(self, job_id: str, after: int) -> None:
        tail = self._tails.get(job_id)
        if tail is not None:
            if tail.shown_seq > after:
                return
        elif job_id in self._finished_tails or self._watch(job_id, after) is None:
            return  # finished here (or closing): nothing more will come, let the caller re-read
        await self.hub.wait(job_id)

    def _watch(self, job_id: str, after: int) -> _Watch | None:
        """The XREAD that follows a job written elsewhere (started from `after` if there is none)."""
        if self.closed:
            return None
        watch = self._watches.get(job_id)
        if watch is None:
            # Sizes unused: this tail numbers nothing, it only keeps what was read.
            tail = Tail(after, {"stdout": 0, "stderr": 0}, self._tail_bytes)
            watch = self._watches[job_id] = _Watch(tail)
            watch.task = asyncio.get_running_loop().create_task(
                self._watching(job_id, watch), name=f"jobcast-redis-watch-{job_id}"
            )
        return watch

    async def _watching(self, job_id: str, watch: _Watch) -> None:
        """Hand the job's new events to the hub, from one blocking read for all its followers
        here, until its `complete` event, or until nobody here follows it any more."""
        key = self._k("ev", job_id)
        idle = 0
        block = max(1, int(self._tick * 1000))
        try:
            while not self.closed:
                try:
                    reply = await self.redis.xread({key: f"{watch.seen}-0"}, _CHUNK, block)
                except (RedisError, OSError) as e:
                    logger.warning("following job %s in Redis failed: %s", job_id, e)
                    await asyncio.sleep(self._tick)
                    continue
                if not reply:
                    idle = 0 if self.hub.has_subscribers(job_id) else idle + 1
                    if idle >= 3 or await self._ended(job_id, watch.seen):
                        return
                    continue
                for entry_id, fields in reply[0][1]:
                    ev = _event(job_id, entry_id, fields)
                    watch.tail.add(ev)
                    watch.tail.shown_seq = ev.seq
                    self.hub.notify(job_id, ev)
                    if ev.type is EventType.COMPLETE:
                        return
        finally:
            if self._watches.get(job_id) is watch:
                del self._watches[job_id]
            self.hub.notify(job_id)  # its waiters see it is no longer followed live

    async def _ended(self, job_id: str, seen: int) -> bool:
        status, last = await self.redis.hmget(self._k("job", job_id), ["status", "last_seq"])
        if status is None:
            return True  # deleted, or never was
        return JobStatus(status.decode()).is_final and seen >= int(last or 0)

    async def read_all(
        self, after: int, *, output: bool = False, max_bytes: int = BATCH_BYTES
    ) -> list[Event]:
        out: list[Event] = []
        total, start = 0, after + 1
        while True:
            entries = await self.redis.xrange(self._k("all"), f"{start}-0", "+", _CHUNK)
            wanted = [
                (f[b"j"].decode(), f[b"s"].decode())
                for _, f in entries
                if output or EventType(f[b"t"].decode()) in LIFECYCLE_EVENTS
            ]
            if wanted:
                pipe = self.redis.pipeline(transaction=False)
                for job_id, seq in wanted:
                    pipe.xrange(self._k("ev", job_id), f"{seq}-0", f"{seq}-0")
                for (job_id, _), found in zip(wanted, await pipe.execute(), strict=True):
                    if not found:
                        continue  # its job was deleted
                    ev = _event(job_id, *found[0])
                    if out and total + ev.size > max_bytes:
                        return out
                    out.append(ev)
                    total += ev.size
            if out or len(entries) < _CHUNK:
                return out
            start = int(entries[-1][0].split(b"-")[0]) + 1

    async def wait_all(self, after: int) -> None:
        if self._shown_gid > after:
            return
        await self.hub.wait(_ALL)

    def last_gid(self) -> int:
        return self._shown_gid

    async def _watch_firehose(self) -> None:
        """Wake the firehose's waiters at events written by other processes too."""
        key = self._k("all")
        block = max(1, int(self._tick * 1000))
        # `closed` is checked, not only the cancellation: redis-py may turn a cancelled read into
        # a connection error.
        while not self.closed:
            try:
                reply = await self.redis.xread({key: f"{self._shown_gid}-0"}, 1, block)
            except (RedisError, OSError) as e:
                logger.warning("following the firehose in Redis failed: %s", e)
                await asyncio.sleep(self._tick)
                continue
            if reply:
                newest = await self.redis.get(self._k("gid"))
                self._shown_gid = max(self._shown_gid, int(newest or 0))
                self.hub.notify(_ALL)

    # -- output bytes -----------------------------------------------------------------------------

    async def output_size(self, job_id: str, stream: StreamName) -> int:
        tail = self._tails.get(job_id)
        if tail is not None:
            sizes = tail.shown_sizes
        else:
            out, err = await self.redis.hmget(
                self._k("job", job_id), ["stdout_bytes", "stderr_bytes"]
            )
            sizes = {"stdout": int(out or 0), "stderr": int(err or 0)}
        return sizes["stdout"] + sizes["stderr"] if stream == "all" else sizes[stream]

    async def read_output(
        self, job_id: str, stream: StreamName, offset: int = 0, length: int | None = None
    ) -> bytes:
        size = await self.output_size(job_id, stream)
        if length is None:
            length = size - offset
        length = min(length, size - offset)
        if length <= 0:
            return b""
        tail = self._tails.get(job_id) or self._finished_tails.get(job_id)
        if stream != "all" and tail is not None:
            data = from_tail(tail, stream, offset, length)
            if data is not None:
                return data  # a follower at the end of the log: the bytes are in memory
        # The entry whose span holds `offset`, then on through the stream.
        first = await self.redis.zrevrangebyscore(
            self._k("off", job_id, stream), offset, "-inf", 0, 1
        )
        if not first:
            return b""
        picked: list[bytes] = []
        want, start = length, int(first[0])
        while want > 0:
            entries = await self.redis.xrange(self._k("ev", job_id), f"{start}-0", "+", _CHUNK)
            for _, f in entries:
                if b"r" not in f or (stream != "all" and f[b"t"].decode() != stream):
                    continue
                at = int(f[b"p"] if stream == "all" else f[b"o"])
                skip = max(0, offset - at)
                piece = f[b"r"][skip : skip + want]
                picked.append(piece)
                want -= len(piece)
                if want <= 0:
                    break
            if len(entries) < _CHUNK:
                break
            start = int(entries[-1][0].split(b"-")[0]) + 1
        return b"".join(picked)


def ping(url: str) -> None:
    """Raise ConnectionError, saying where and what to do, unless Redis at `url` answers."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except RedisError as e:
        raise ConnectionError(_unreachable(url, e)) from e
    finally:
        client.close()


def _unreachable(url: str, error: Exception) -> str:
    return f"cannot reach Redis at {safe_store_url(url)}: {error}; start it, or check --store"


def _event_args(ev: Event, pos: int | None) -> list[Any]:
    if ev.raw is not None:
        d, o, n, p = "", ev.data["offset"], ev.data["length"], pos or 0
        return [ev.seq, ev.type.value, repr(ev.ts), d, ev.raw, o, n, p]
    return [ev.seq, ev.type.value, repr(ev.ts), orjson.dumps(ev.data), "", "", "", ""]


def _event(job_id: str, entry_id: bytes, f: dict[bytes, bytes]) -> Event:
    """An event from its stream entry."""
    seq = int(entry_id.split(b"-")[0])
    kind = EventType(f[b"t"].decode())
    if b"r" in f:
        data = {"offset": int(f[b"o"]), "length": int(f[b"n"])}
        return Event(seq, job_id, kind, float(f[b"ts"]), data, f[b"r"], int(f[b"g"]))
    return Event(seq, job_id, kind, float(f[b"ts"]), orjson.loads(f[b"d"]), None, int(f[b"g"]))


def _encode(value: Any) -> str | int | bytes:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | str | bytes):
        return value
    return str(value)
