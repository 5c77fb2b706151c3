"""WebSocket /ws: one connection for any number of jobs (the multiplexed protocol, muxcodec.py).

Each subscribed job is a cursor of the connection (`_Sub`), never a queue. Parked at the job's
tail, it waits in the job's `_Fan`, the one store listener for every connection parked there:
each new event is encoded once and its shared frame joined to each connection's pending writes
(written every few ms at most), as follow.py's followers write theirs. Behind (the client lags,
a gap, a job caught up from storage), it goes into its connection's ready queue and the
connection's one sender task reads the store for it, a batch per job in turn. So whatever a
connection subscribes to, it holds a cursor per job and about one batch in flight; a slow
connection falls behind on each of its jobs and catches up from storage.

`"*"` subscribes to every job that has not finished, and to every job created afterwards (the
server-wide `JobWatch` follows the firehose for them); `after` resumes each job from the seq the
client last had, also for jobs that finished meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from ..config import Scope
from ..errors import BadRequest, JobcastError, JobFinished, JobNotFound, TooManyRequests
from ..models import Event, EventType, Job, JobStatus
from ..store import Store
from ..store.base import BATCH_BYTES
from .auth import ANONYMOUS, IDENTITY, TOKENS, Identity, authenticate_socket
from .control import check_control, may_control, strip_terminal_replies
from .follow import TransportWriter
from .http import query_b64
from .ledger import record, traced
from .muxcodec import BadMessage, Codec, MuxCommand
from .state import STATE, Follower, State
from .websocket import open_socket, release

__all__ = ["WATCH", "Firehose", "JobWatch", "lifespan", "routes", "serve"]

routes = web.RouteTableDef()
log = logging.getLogger("jobcast.api.mux")

#: past this much unsent data, a connection's parked jobs wait for the client to read: 64 KiB
#: as any follower, and 1 KiB more for each job it follows (up to 1 MiB), since a single round
#: of one event per job is that much: below it, every round would send each job through the store
_LOW_WATER, _WATER_PER_JOB, _HIGH_WATER = 64 * 1024, 1024, 1024 * 1024
#: the most often parked jobs' frames are written to one connection (seconds)
_FLUSH_EVERY = 0.005
#: most bytes of events the firehose hands out in one round
_FIRE_BYTES = 1024 * 1024
#: most jobs one connection follows at once
MAX_SUBSCRIPTIONS = 10_000
#: jobs in a `jobs` message (newest first); `available` lists every unfinished one
LIST_LIMIT = 500
#: client messages a second, and the burst allowed beyond
RATE, BURST = 500.0, 1000.0
#: jobs a `"*"` subscriber remembers having followed to the end, so it never follows them twice
_FINISHED_MEMORY = 4096


class _Sub:
    """One job followed by one connection: its cursor. Parked at the job's tail, it waits in
    the job's `_Fan` with every other connection's."""

    __slots__ = ("active", "after", "conn", "job", "queued")

    def __init__(self, conn: _Connection, job: str, after: int) -> None:
        self.conn, self.job, self.after = conn, job, after
        self.queued = False
        #: False once unsubscribed or replaced: its fan forgets it at the next event
        self.active = True


class _Fan:
    """The subs of every connection parked at one job's tail, and the job's one store listener.

    Each new event is encoded once (per format) and added to each parked connection's pending
    frames: the hot path, once per event and connection. A sub whose connection lags, or that
    is not exactly at the event, goes back to its connection's sender, which reads the store.
    """

    __slots__ = ("fans", "job", "listening", "loop", "seen", "store", "subs")

    def __init__(self, fans: dict[str, _Fan], store: Store, job: str, seen: int) -> None:
        self.fans, self.store, self.job = fans, store, job
        #: the seq of the last event it was handed (the tail, while it listens)
        self.seen = seen
        self.subs: list[_Sub] = []
        self.listening = False
        self.loop = asyncio.get_running_loop()

    def join(self, sub: _Sub) -> bool:
        if not self.listening or sub.after != self.seen:
            return False
        self.subs.append(sub)
        return True

    def __call__(self, ev: Event | None) -> bool:
        if ev is None:
            # A tick (the hub drops every listener then) or the store closing: listen again,
            # later than this call, since the hub is replacing its lists meanwhile.
            self.listening = False
            self.loop.call_soon(self.relisten)
            return False
        try:
            return self._deliver(ev)
        except BaseException:
            self.scatter()  # nobody is left waiting on a listener the hub is about to drop
            raise

    def _deliver(self, ev: Event) -> bool:
        if ev.seq != self.seen + 1:
            self.scatter()
            return False
        self.seen = ev.seq
        complete = ev.type is EventType.COMPLETE
        keep: list[_Sub] = []
        frames: dict[str, bytes] = {}
        for sub in self.subs:
            if not sub.active:
                continue
            conn = sub.conn
            if conn.lag or sub.after + 1 != ev.seq:
                conn.ready(sub)  # the client lags (or a gap): its sender reads for it
                continue
            key = conn.codec_key
            data = frames.get(key)
            if data is None:
                data = frames[key] = ev.cache.get(key) or conn.codec.event(ev)
            sub.after = ev.seq
            if not data:  # an event this format has no message for
                if complete:
                    conn.finished(sub)
                else:
                    keep.append(sub)
                continue
            # Joined with the other jobs' frames: a connection following hundreds of jobs
            # makes a write every _FLUSH_EVERY at most, not one per event.
            pending = conn.pending
            pending.append(data)
            conn.pending_bytes += len(data)
            if len(pending) == 1:
                conn.schedule_flush()
            elif conn.pending_bytes > conn.water:
                conn.lag = True
            if complete:
                conn.finished(sub)
            else:
                keep.append(sub)
        self.subs = keep
        if complete or not keep:
            self._leave()
            return False
        return True

    def relisten(self) -> None:
        if self.fans.get(self.job) is not self or self.listening:
            return
        if not self.subs or self.store.closed:
            self.scatter()
        elif self.store.listen(self.job, self.seen, self):
            self.listening = True
        else:
            self.scatter()  # events came meanwhile: each sub reads them

    def scatter(self) -> None:
        """Hand every sub back to its connection's sender."""
        self._leave()
        subs, self.subs = self.subs, []
        for sub in subs:
            if sub.active:
                sub.conn.ready(sub)

    def _leave(self) -> None:
        self.listening = False
        if self.fans.get(self.job) is self:
            del self.fans[self.job]


def _park(fans: dict[str, _Fan], store: Store, sub: _Sub) -> bool:
    """Park `sub` at its job's tail; False if it is not there (or the job will not go on)."""
    fan = fans.get(sub.job)
    if fan is not None:
        return fan.join(sub)
    fan = _Fan(fans, store, sub.job, sub.after)
    if not store.listen(sub.job, sub.after, fan):
        return False
    fan.listening = True
    fans[sub.job] = fan
    fan.subs.append(sub)
    return True


class _Connection:
    def __init__(
        self, request: web.Request, ws: web.WebSocketResponse, identity: Identity, codec: Codec
    ) -> None:
        self.request, self.ws, self.identity, self.codec = request, ws, identity, codec
        self.codec_key = codec.key
        self.fans = request.app[WATCH].fans
        self.state: State = request.app[STATE]
        self.store = self.state.store
        self.loop = asyncio.get_running_loop()
        self.write = TransportWriter(request)
        self.follower = Follower("mux", None, request.transport)
        self.subs: dict[str, _Sub] = {}
        self.star = False
        self._queue: deque[_Sub] = deque()
        #: frames of parked jobs not yet written (see `_Fan`), and their size
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        #: the client has more than `water` unread: parked jobs leave it to the sender
        self.lag = False
        #: its high-water mark, by the number of jobs it follows
        self.water = _LOW_WATER
        self._flushed = 0.0
        self._wake = asyncio.Event()
        self._finished: OrderedDict[str, None] = OrderedDict()
        #: on the firehose (see `Firehose`): its subs' cursors then lag behind what it was sent,
        #: and are brought up to date from the firehose's own when it leaves
        self.fire = False
        #: a `"*"` subscriber that dropped a job (or hit the limit): it follows less than
        #: everything, so the firehose, which sends everything, is not for it
        self.partial = False
        self._tokens, self._refilled, self._warned = BURST, time.monotonic(), 0.0
        self.closed = False

    # -- the cursors ------------------------------------------------------------------------------

    def lagging(self) -> bool:
        return self.write.transport.get_write_buffer_size() + self.pending_bytes > self.water

    def schedule_flush(self) -> None:
        # At once when the connection has been quiet (a keystroke's echo waits for nothing);
        # else once _FLUSH_EVERY has passed since the last write.
        loop = self.loop
        due = self._flushed + _FLUSH_EVERY
        if loop.time() >= due:
            loop.call_soon(self.flush)
        else:
            loop.call_at(due, self.flush)

    def flush(self) -> None:
        """Write what parked jobs left; before any other write, to keep each job's order."""
        pending = self.pending
        if not pending:
            return
        self._flushed = self.loop.time()
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self.follower.events_sent += len(pending)
        self.follower.bytes_sent += len(data)
        pending.clear()
        self.pending_bytes = 0
        if self.closed or self.write.transport.is_closing():
            return
        self.write.send(data)
        self.lag = self.lagging()
        if self.lag:
            self._wake.set()  # the sender waits for the client to read before anything else

    async def out(self, data: bytes) -> None:
        self.flush()
        await self.write(data)

    def ready(self, sub: _Sub) -> None:
        if not sub.queued:
            sub.queued = True
            self._queue.append(sub)
            self._wake.set()

    def add(self, job_id: str, after: int) -> None:
        old = self.subs.get(job_id)
        if old is not None:
            old.active = False  # replaced: its listener leaves at its next call
        else:
            self.state.stats.per_job[job_id] += 1
        sub = self.subs[job_id] = _Sub(self, job_id, after)
        self.water = min(_HIGH_WATER, _LOW_WATER + _WATER_PER_JOB * len(self.subs))
        self.ready(sub)

    def drop(self, job_id: str) -> bool:
        sub = self.subs.pop(job_id, None)
        if sub is None:
            return False
        sub.active = False
        self.water = min(_HIGH_WATER, _LOW_WATER + _WATER_PER_JOB * len(self.subs))
        per_job = self.state.stats.per_job
        per_job[job_id] -= 1
        if per_job[job_id] <= 0:
            del per_job[job_id]
        return True

    def finished(self, sub: _Sub) -> None:
        """The job's `complete` event went out: nothing more will come for it."""
        self.drop(sub.job)
        self._finished[sub.job] = None
        if len(self._finished) > _FINISHED_MEMORY:
            self._finished.popitem(last=False)

    def discover(self, job: Job) -> None:
        """A job was created: a `"*"` subscriber follows it from its first event."""
        if not (
            self.star
            and job.id not in self.subs
            and job.id not in self._finished
            and self.identity.sees(job.labels)
        ):
            return
        self.codec.know(job)
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            self.partial = True
            return
        if self.fire:
            # Its events come (or came) on the firehose: a cursor to resume from if it leaves.
            self.follow(job.id, 0)
        else:
            self.add(job.id, 0)

    def follow(self, job_id: str, after: int) -> _Sub:
        """A sub the firehose serves (it is in no fan, nor in the ready queue)."""
        old = self.subs.get(job_id)
        if old is not None:
            old.active = False
        else:
            self.state.stats.per_job[job_id] += 1
        sub = self.subs[job_id] = _Sub(self, job_id, after)
        self.water = min(_HIGH_WATER, _LOW_WATER + _WATER_PER_JOB * len(self.subs))
        return sub

    def may_fire(self) -> bool:
        """Whether this connection follows every job, so the firehose may serve it."""
        return (
            self.codec.firehose
            and self.star
            and not self.partial
            and not self.closed
            and not self.identity.labels
            and not self._queue
            and not self.lag
        )

    def leave_fire(self) -> None:
        """Off the firehose: each job goes on from where the firehose left it, by its sub."""
        if not self.fire:
            return
        self.fire = False
        fire = self.request.app[WATCH].fire
        fire.remove(self)
        for job_id, sub in list(self.subs.items()):
            new = self.follow(job_id, max(sub.after, fire.seqs.get(job_id, 0)))
            self.ready(new)

    async def send_loop(self) -> None:
        """Read the store for each job in the ready queue in turn; one batch in flight at most."""
        state, store = self.state, self.store
        while not (self.closed or store.closed):
            if not self._queue and state.closing:
                self.flush()
                return  # what there was went out: the jobs' last events too
            self.flush()
            if self.lagging():
                await state.guarded(self.follower, self.write.drain())
                self.lag = self.lagging()
                continue
            # The client has read what there was: parked jobs write for themselves again.
            self.lag = False
            if not self._queue:
                if not self.fire and self.may_fire():
                    self.request.app[WATCH].fire.want(self)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):  # to see the server closing
                        await self._wake.wait()
                continue
            sub = self._queue.popleft()
            sub.queued = False
            if self.subs.get(sub.job) is sub:
                await self._serve(sub)

    async def _serve(self, sub: _Sub) -> None:
        """Write what the job has past the sub's cursor, a batch; or park the sub at its tail."""
        store = self.store
        try:
            events = await store.read(sub.job, sub.after, BATCH_BYTES)
        except JobNotFound:
            self.drop(sub.job)  # deleted meanwhile
            await self.send("unsubscribed", jobs=[sub.job], reason="the job was deleted")
            return
        if self.subs.get(sub.job) is not sub:
            return
        if events:
            data = b"".join(self.codec.event(e) for e in events)
            sub.after = events[-1].seq
            if events[-1].type is EventType.COMPLETE:
                self.finished(sub)
            else:
                self.ready(sub)  # more may wait: after the other jobs' turns
            count = len(events)
            del events
            if data:
                self.follower.blocked_since = time.monotonic()
                await self.out(data)
                self.follower.blocked_since = None
                self.follower.events_sent += count
                self.follower.bytes_sent += len(data)
            return
        if _park(self.fans, store, sub):
            return
        if store.is_live(sub.job):
            # An event came between the read and the listen, or the job's fan listens again
            # at this turn of the loop: after it (a read from memory does not yield).
            self.loop.call_soon(self.ready, sub)
            return
        job = await store.get_job(sub.job)
        if job.status.is_final and sub.after >= job.last_seq:
            self.finished(sub)  # resumed past its end
        else:
            # Not in this store's memory (a job left queued by a previous server, say):
            # look again at the next tick.
            self.loop.call_later(1.0, self.ready, sub)

    # -- messages ---------------------------------------------------------------------------------

    async def send(self, kind: str, **fields: Any) -> None:
        await self.out(self.codec.message(kind, **fields))

    def _admit(self) -> bool:
        """The client's message rate, as a token bucket: False to drop this message."""
        now = time.monotonic()
        self._tokens = min(BURST, self._tokens + (now - self._refilled) * RATE)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def receive_loop(self) -> None:
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                continue
            if not self._admit():
                now = time.monotonic()
                if now - self._warned >= 1.0:
                    self._warned = now
                    error = TooManyRequests(
                        f"more than {RATE:g} messages a second: messages are dropped until "
                        "the rate falls"
                    )
                    await self.out(self.codec.error(error))
                continue
            cmd: MuxCommand | None = None
            try:
                if msg.type is WSMsgType.BINARY:
                    raise BadMessage("send JSON text frames; input goes in a `send` message")
                cmd = self.codec.parse(msg.data)
                await self.handle(cmd)
            except BadMessage as e:
                await self.out(self.codec.error(e, e.request_id))
            except JobcastError as e:
                await self.out(self.codec.error(e, cmd.id if cmd is not None else None))
            except ConnectionError:
                raise
            except Exception:
                # A bug of ours must not take the connection (and what it follows) down.
                log.exception("a /ws message failed")
                failed = JobcastError("the server failed to handle this message; it is logged")
                await self.out(self.codec.error(failed, cmd.id if cmd is not None else None))

    async def greet(self) -> None:
        await self.send_list()

    async def send_list(self, rid: Any = None) -> None:
        labels = dict(self.identity.labels)
        # Sources are jobs of kind `source` in the same store: listed here, and in `"*"`, too.
        page = await self.store.list_jobs(label=labels, limit=LIST_LIMIT)
        extra = {"id": rid} if rid is not None else {}
        await self.send("jobs", jobs=page.jobs, **extra)
        live = await self._live_jobs()
        available = [{"id": j.id, "name": j.name, "status": j.status} for j in live]
        await self.send("available", jobs=available, **extra)

    async def _live_jobs(self) -> list[Job]:
        out: list[Job] = []
        labels = dict(self.identity.labels)
        for status in (JobStatus.RUNNING, JobStatus.QUEUED):
            cursor = None
            while len(out) < MAX_SUBSCRIPTIONS:
                page = await self.store.list_jobs(
                    status=status, label=labels, limit=1000, cursor=cursor
                )
                out += page.jobs
                cursor = page.next_cursor
                if cursor is None:
                    break
        return out[:MAX_SUBSCRIPTIONS]

    async def _job(self, ref: str) -> Job:
        job = await self.store.get_job(ref)
        if not self.identity.sees(job.labels):
            raise JobNotFound.for_ref(ref)
        self.codec.know(job)
        return job

    async def handle(self, cmd: MuxCommand) -> None:
        extra = {"id": cmd.id} if cmd.id is not None else {}
        if cmd.type == "list":
            await self.send_list(cmd.id)
        elif cmd.type == "subscribe":
            await self.subscribe(cmd, extra)
        elif cmd.type == "unsubscribe":
            if "*" in cmd.jobs:
                self.star = self.partial = False
                gone = list(self.subs)
            else:
                gone = [(await self._job_or_none(ref)) or ref for ref in cmd.jobs]
            # Cursors change: off the firehose (per job again, until it rejoins) right before,
            # with no await in between, where the sender could rejoin (a store whose reads
            # really wait, such as Redis, lets it).
            self.leave_fire()
            dropped = [job_id for job_id in gone if self.drop(job_id)]
            if self.star and dropped:
                self.partial = True
            await self.send("unsubscribed", jobs=dropped, **extra)
        elif cmd.type == "get_buffer":
            await self.buffer(cmd, extra)
        else:
            await self.control(cmd, extra)

    async def _job_or_none(self, ref: str) -> str | None:
        try:
            return (await self._job(ref)).id
        except JobNotFound:
            return None

    async def subscribe(self, cmd: MuxCommand, extra: dict[str, Any]) -> None:
        targets: dict[str, Job] = {}
        unknown: list[str] = []
        for ref in [r for r in cmd.jobs if r != "*"] + [r for r in cmd.after if r not in cmd.jobs]:
            try:
                job = await self._job(ref)
            except JobNotFound:
                unknown.append(ref)
                continue
            targets[job.id] = job
        if "*" in cmd.jobs:
            self.star = True  # from here on, JobWatch hands it the jobs created
            self.partial = False
            for job in await self._live_jobs():
                self.codec.know(job)
                if job.id not in self._finished:  # followed to its end since the flag was set
                    targets.setdefault(job.id, job)
        self.leave_fire()  # after the awaits, as for an unsubscribe
        after: dict[str, int] = {}
        for job_id, job in targets.items():
            given = cmd.after.get(job_id, cmd.after.get(job.name or "", None))
            if given is None and job_id in self.subs:
                after[job_id] = self.subs[job_id].after  # already followed: it goes on
                continue
            if job_id not in self.subs and len(self.subs) >= MAX_SUBSCRIPTIONS:
                raise BadRequest(
                    f"a connection follows at most {MAX_SUBSCRIPTIONS} jobs; unsubscribe some"
                )
            after[job_id] = given or 0
            self._finished.pop(job_id, None)
            self.add(job_id, given or 0)
        await self.send(
            "subscribed", jobs=list(after), after=after, all="*" in cmd.jobs or self.star, **extra
        )
        if unknown:
            error = JobNotFound(
                f"no such job: {', '.join(unknown[:20])}"
                + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
            )
            await self.out(self.codec.error(error, cmd.id, jobs=unknown[:1000]))

    async def buffer(self, cmd: MuxCommand, extra: dict[str, Any]) -> None:
        """The last `max_bytes` of the job's output, and the seq it goes up to: subscribing with
        that as `after` continues exactly where the buffer ends."""
        job = await self._job(cmd.job)
        end = job.stdout_bytes + job.stderr_bytes
        start = max(0, end - cmd.max_bytes)
        data = await self.store.read_output(job.id, "all", start, end - start)
        # Start at a character, not in the middle of one.
        cut = 0
        while start and cut < min(3, len(data)) and data[cut] & 0xC0 == 0x80:
            cut += 1
        data, start = data[cut:], start + cut
        fields: dict[str, Any] = {"job": job.id, "seq": job.last_seq, "offset": start}
        fields["data"] = data.decode("utf-8", "replace")
        if self.codec.b64:
            import base64

            fields["b64"] = base64.b64encode(data).decode("ascii")
        await self.send("buffer", **fields, **extra)

    async def control(self, cmd: MuxCommand, extra: dict[str, Any]) -> None:
        """send, interrupt, resize, signal, cancel: each answered with `<type>_result`."""
        result: dict[str, Any] = {"job": cmd.job}
        try:
            job = await self._job(cmd.job)
            result["job"] = job.id
            result.update(await self._act(cmd, job))
            result["success"] = True
        except JobcastError as e:
            result.update(success=False, **e.to_payload())
        await self.send(f"{cmd.type}_result", **result, **extra)

    async def _act(self, cmd: MuxCommand, job: Job) -> dict[str, Any]:
        state, request, sup = self.state, self.request, self.state.supervisor
        if cmd.type == "send" and not may_control(state, self.identity, job):
            if not strip_terminal_replies(cmd.data):
                # Its terminal answering a query in the output: never the job's business.
                raise _ReadOnly(
                    f"job {job.id}: terminal replies from a viewer are not forwarded; token "
                    f"{self.identity.name!r} watches"
                )
        check_control(state, self.identity, job, f"a {cmd.type} message")
        if cmd.type == "send":
            async with traced(request, "job.input", job.id, bytes=len(cmd.data), eof=False):
                return {"written": await sup.write_input(job.id, cmd.data)}
        if cmd.type == "interrupt":
            async with traced(request, "job.interrupt", job.id) as op:
                op.detail["how"] = how = await sup.interrupt(job.id)
            return {"interrupted": how}
        if cmd.type == "resize":
            await sup.resize(job.id, cmd.cols, cmd.rows)
            return {"cols": cmd.cols, "rows": cmd.rows}
        if cmd.type == "signal":
            async with traced(request, "job.signal", job.id, signal=cmd.signal) as op:
                op.detail["signal"] = name = await sup.signal(job.id, cmd.signal)
            return {"signal": name}
        await record(request, "job.cancel", job.id)
        if job.status.is_final:
            raise JobFinished(f"job {job.id} has already finished ({job.status})")
        await sup.cancel(job.id, wait=False)
        return {}


class _ReadOnly(JobcastError):
    code = "read_only"
    status = 403


class Firehose:
    """Every event of every job, in the store's global order, for the `"*"` connections that
    follow everything and are at the live end: one cursor for all of them.

    At each round (every _FLUSH_EVERY at most) it reads what the store showed since its cursor,
    encodes the frames once per format, joins them once, and writes that one buffer to each
    member: the cost per event no longer grows with the connections. A member keeps its subs,
    whose cursors stand where it joined; the firehose's last seq of each job brings them up to
    date when the member leaves (it lags, or changes what it follows), and its jobs then go on
    through the per-job path (fans and the store), exactly where the firehose stopped.

    A connection joins only at a moment when nothing is between it and the firehose: the
    firehose has handed out everything the store showed, the job watch has handed out every
    job created up to there, and each of the connection's jobs is parked at its tail.
    """

    def __init__(self, watch: JobWatch, store: Store) -> None:
        self.watch, self.store = watch, store
        self.members: set[_Connection] = set()
        self.candidates: set[_Connection] = set()
        #: the gid of the last event handed out
        self.gid = 0
        #: each unfinished job's seq at `gid` (as far as the firehose has seen it)
        self.seqs: dict[str, int] = {}
        self._sent = 0.0

    def want(self, conn: _Connection) -> None:
        self.candidates.add(conn)
        self.admit()

    def remove(self, conn: _Connection) -> None:
        """The connection is off the firehose (it left, or it is gone)."""
        self.members.discard(conn)
        self.candidates.discard(conn)
        conn.state.stats.firehose = len(self.members)

    def admit(self) -> None:
        if not self.candidates:
            return
        if self.gid != self.store.last_gid() or self.watch.discovered < self.gid:
            return  # at the end of its next round
        fans = self.watch.fans
        candidates, self.candidates = self.candidates, set()
        for conn in candidates:
            if conn.fire or not conn.may_fire():
                continue
            if not all(_parked(fans, sub) for sub in conn.subs.values()):
                continue  # it asks again once its sender is idle
            conn.flush()  # what fans left for it comes first
            conn.fire = True
            self.members.add(conn)
            conn.state.stats.firehose = len(self.members)
            for job_id, sub in list(conn.subs.items()):
                conn.follow(job_id, sub.after)  # out of its fan: the firehose serves it

    async def run(self) -> None:
        store, loop = self.store, asyncio.get_running_loop()
        self.gid = store.last_gid()
        while not store.closed:
            if store.last_gid() <= self.gid:
                self.admit()
                await store.wait_all(self.gid)
                continue
            if not self.members:
                self.gid = store.last_gid()
                self.seqs.clear()
                continue
            delay = self._sent + _FLUSH_EVERY - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            events = await store.read_all(self.gid, output=True, max_bytes=_FIRE_BYTES)
            if not events:
                continue
            self._sent = loop.time()
            self._deliver(events)
            self.gid = events[-1].gid
            self.admit()

    def _deliver(self, events: list[Event]) -> None:
        created = [ev.job for ev in events if ev.seq == 1]
        if created:
            self._make_room(len(created))
        seqs = self.seqs
        for ev in events:
            seqs[ev.job] = ev.seq
        for job_id in created:
            for conn in self.members:
                if job_id not in conn.subs and job_id not in conn._finished:
                    conn.follow(job_id, 0)
        self._write(events)
        for ev in events:
            if ev.type is EventType.COMPLETE:
                for conn in self.members:
                    sub = conn.subs.get(ev.job)
                    if sub is not None:
                        conn.finished(sub)
                seqs.pop(ev.job, None)

    def _make_room(self, created: int) -> None:
        """Members that cannot follow `created` more jobs leave, before the round (their
        cursors are then where the firehose stands)."""
        for conn in list(self.members):
            if len(conn.subs) + created > MAX_SUBSCRIPTIONS:
                conn.partial = True
                conn.leave_fire()

    def _write(self, events: list[Event]) -> None:
        frames: dict[str, bytes] = {}
        for conn in list(self.members):
            key = conn.codec_key
            data = frames.get(key)
            if data is None:
                data = frames[key] = b"".join([conn.codec.event(ev) for ev in events])
            if conn.pending:
                conn.flush()
            transport = conn.write.transport
            if conn.closed or transport.is_closing():
                continue
            transport.write(data)
            conn.follower.events_sent += len(events)
            conn.follower.bytes_sent += len(data)
            if conn.lagging():
                conn.lag = True
                conn.leave_fire()  # it catches up through the store, job by job


def _parked(fans: dict[str, _Fan], sub: _Sub) -> bool:
    """Whether the sub is at its job's tail, its fan listening (so at the last event shown)."""
    fan = fans.get(sub.job)
    return (
        sub.active
        and not sub.queued
        and fan is not None
        and fan.listening
        and fan.seen == sub.after
    )


class JobWatch:
    """Follows the firehose for new jobs and hands each to the `"*"` subscribers: one task for
    the server, however many connections watch."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.connections: set[_Connection] = set()
        #: by job: the subs parked at its tail, of every connection
        self.fans: dict[str, _Fan] = {}
        #: every job created up to this gid has been handed to the `"*"` subscribers
        self.discovered = 0
        self.fire = Firehose(self, state.store)

    async def run(self) -> None:
        store = self.state.store
        after = self.discovered = store.last_gid()
        while not store.closed:
            events = await store.read_all(after, output=False, max_bytes=BATCH_BYTES)
            if not events:
                after = self.discovered = max(after, store.last_gid())
                self.fire.admit()
                await store.wait_all(after)
                continue
            created = [e.job for e in events if e.seq == 1]
            if created and any(c.star for c in self.connections):
                for job_id in created:
                    try:
                        job = await store.get_job(job_id)
                    except JobNotFound:
                        continue
                    for conn in list(self.connections):
                        conn.discover(job)
            after = self.discovered = events[-1].gid


WATCH = web.AppKey("jobcast_mux_watch", JobWatch)


async def lifespan(app: web.Application) -> AsyncIterator[None]:
    """After the state's own set-up (app.py): the job watch, for as long as the server runs."""
    watch = app[WATCH] = JobWatch(app[STATE])
    tasks = [
        asyncio.create_task(watch.run(), name="jobcast-mux-watch"),
        asyncio.create_task(watch.fire.run(), name="jobcast-mux-firehose"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@routes.get("/ws", allow_head=False)
async def mux_ws(request: web.Request) -> web.StreamResponse:
    settings = request.app[STATE].settings
    return await serve(request, Codec(b64=query_b64(request), buffer_bytes=settings.buffer_bytes))


async def serve(request: web.Request, codec: Codec) -> web.StreamResponse:
    """One multiplexed connection speaking `codec`'s format (/ws's own, or a profile's)."""
    state = request.app[STATE]
    identity = request[IDENTITY]
    ws = await open_socket(request)
    if identity is ANONYMOUS:
        authenticated = await authenticate_socket(ws, request.app[TOKENS], Scope.READ, request)
        if authenticated is None:
            return ws
        identity = request[IDENTITY] = authenticated
    conn = _Connection(request, ws, identity, codec)
    watch = request.app[WATCH]
    state.stats.add(conn.follower)
    watch.connections.add(conn)
    sender: asyncio.Task[None] | None = None
    try:
        await conn.greet()
        sender = asyncio.create_task(conn.send_loop(), name="jobcast-mux-send")
        # The client closing ends the receiver; the server closing ends the sender, which then
        # closes the socket below and so ends the receiver too.
        receiver = asyncio.create_task(conn.receive_loop(), name="jobcast-mux-receive")
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if not receiver.done():
            if not ws.closed and not conn.write.transport.is_closing():
                with contextlib.suppress(ConnectionError):
                    await ws.close(code=1001, message=b"going away")
            receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, JobcastError):
            await receiver
    except (ConnectionError, JobcastError):
        pass
    finally:
        conn.closed = True
        watch.connections.discard(conn)
        watch.fire.remove(conn)
        for job_id in list(conn.subs):
            conn.drop(job_id)
        state.stats.remove(conn.follower)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, JobcastError):
                await sender
        release(ws)
    return ws
