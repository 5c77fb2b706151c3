"""Cursor -> bytes: the one loop every streaming transport runs for a follower.

A follower is a position in a job's log. It reads what is past its position (from the store's
in-memory tail when near the end, from storage when far behind) and writes it in one joined write.
At the tail it parks: the store hands it each new event as it is appended, and it writes that
event's shared, pre-encoded bytes to its client there and then. Its task sleeps meanwhile, and
wakes only when it must: its client lags, the job completes, or the tick (heartbeats, a client that
left). No queue per client: a slow client only falls behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..models import Event, EventType
from ..store.base import BATCH_BYTES
from ..trace import Entry
from .state import Follower, State

__all__ = [
    "BATCH_BYTES",
    "TransportWriter",
    "chunked",
    "follow_firehose",
    "follow_job",
]


#: past this much unsent data a writer waits for the client to read
_HIGH_WATER = 64 * 1024

Frame = Callable[[Event], bytes]
Envelope = Callable[[bytes], bytes]


def chunked(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk, so a streaming response can be written past aiohttp's writer."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class TransportWriter:
    """Write bytes straight to the connection, waiting only when the client lags.

    aiohttp's own writer copies (and for chunked responses frames) every write for every client;
    the bytes here are built once per batch and shared, so each client costs one `write` call.
    With `chunk`, each write becomes one HTTP chunk, its header and trailer sent beside the data
    rather than joined to it (for bytes no other client shares, such as `/log`'s).
    """

    __slots__ = ("_request", "chunk", "transport")

    def __init__(self, request: web.BaseRequest, *, chunk: bool = False) -> None:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        self._request, self.transport, self.chunk = request, transport, chunk

    def send(self, data: bytes) -> bool:
        """Write without waiting; False once the client lags (call `drain`)."""
        if self.chunk:
            self.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.transport.write(data)
        return self.transport.get_write_buffer_size() <= _HIGH_WATER

    async def drain(self) -> None:
        if self.transport.get_write_buffer_size() > _HIGH_WATER:
            await self._request.writer.drain()

    async def __call__(self, data: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        if not self.send(data):
            await self._request.writer.drain()


def _one(ev: Event, frame: Frame, key: str, envelope: Envelope | None) -> bytes:
    """One event framed and enveloped, cached on it under `key` (`one:<tag>`) for every client."""
    if envelope is None:
        return frame(ev)  # the frames cache themselves
    out = ev.cache.get(key)
    if out is None:
        out = frame(ev)
        if out:
            out = ev.remember(key, envelope(out))
    return out


def _join(events: list[Event], frame: Frame, tag: str, envelope: Envelope | None) -> bytes:
    if len(events) == 1:
        return _one(events[0], frame, f"one:{tag}", envelope)  # shared with parked followers
    first, last = events[0], events[-1]
    # Kept only where other clients will ask for the same: an aligned batch of the tail, or one
    # at the live end (its followers wake together). A catching-up client's first batch, from
    # wherever it was, is its own: caching those would grow with the number of cursors.
    shared = first.opens or not last.closes
    key = f"join:{tag}:{first.seq}:{first.gid}"
    out = last.cache.get(key) if shared else None
    if out is None:
        out = b"".join(frame(e) for e in events)
        if out and envelope is not None:
            out = envelope(out)
        if shared:
            last.remember(key, out)
    return out


class _Parked:
    """A follower at the tail: the store calls it with each new event, and it writes it at once.

    It hands control back to its task (resolving `woken`, and returning False to be dropped) for
    anything but a plain write: the job's `complete` event, a client that lags or left, a gap,
    the tick. The task then does what is due and parks again.
    """

    __slots__ = ("after", "envelope", "follower", "frame", "key", "last_write", "woken", "write")

    def __init__(
        self,
        after: int,
        frame: Frame,
        tag: str,
        envelope: Envelope | None,
        write: TransportWriter,
        follower: Follower,
    ) -> None:
        self.after = after
        self.frame = frame
        self.envelope = envelope
        self.write = write
        self.follower = follower
        self.key = f"one:{tag}"
        self.last_write = 0.0
        self.woken = asyncio.get_running_loop().create_future()

    def __call__(self, ev: Event | None) -> bool:
        if self.woken.done():
            return False  # its task has gone (cancelled) or was already woken
        if (
            ev is None
            or ev.seq != self.after + 1
            or ev.type is EventType.COMPLETE
            or self.write.transport.is_closing()
        ):
            self.woken.set_result(None)
            return False
        try:
            data = _one(ev, self.frame, self.key, self.envelope)
            self.after = ev.seq
            if not data:
                return True
            self.last_write = time.monotonic()
            self.follower.events_sent += 1
            self.follower.bytes_sent += len(data)
            if self.write.send(data):
                return True
        except BaseException:
            self.woken.set_result(None)  # its task finds out what broke; the hub logs it
            raise
        self.woken.set_result(None)  # the client lags: its task waits for it to read
        return False


async def follow_job(
    state: State,
    follower: Follower,
    job_id: str,
    after: int,
    frame: Frame,
    tag: str,
    write: TransportWriter,
    heartbeat: bytes | None = None,
    envelope: Envelope | None = None,
    interval: float | None = None,
) -> bool:
    """Write the job's events past `after` until its `complete` event; True if that was reached.

    `frame` turns an event into the bytes to send (b"" to skip it) and `envelope`, if given, wraps
    each joined batch (an HTTP chunk); `tag` names that encoding, so joins of the same events in
    the same encoding are built once for every client. Returns False when the server is closing
    or the client has gone. Raises whatever `write` raises when the client goes away. `interval`
    is the heartbeat's period (default: the `heartbeat_seconds` setting).
    """
    store = state.store
    if interval is None:
        interval = state.settings.heartbeat_seconds
    last_write = time.monotonic()
    woken_empty = False
    while True:
        events = await store.read(job_id, after, BATCH_BYTES)
        if events:
            woken_empty = False
            data = _join(events, frame, tag, envelope)
            count, after, done = len(events), events[-1].seq, events[-1].type is EventType.COMPLETE
            del events  # not held while the client reads: a stalled client keeps only `data`
            if data:
                # The catching-up path, once per batch per client: one joined write.
                last_write = follower.blocked_since = time.monotonic()
                await write(data)
                follower.blocked_since = None
                follower.events_sent += count
                follower.bytes_sent += len(data)
            if done:
                return True
            continue
        if state.closing or store.closed:
            return False
        if woken_empty:
            # Woken with nothing new: a tick (about once a second), or the job ended before we
            # came. Only here the slower checks, never after each event.
            ended = await _ended(state, job_id, after, write)
            if ended is not None:
                return ended
            if heartbeat is not None and time.monotonic() - last_write >= interval:
                await state.guarded(follower, write(heartbeat))
                last_write = time.monotonic()
        woken_empty = True
        parked = _Parked(after, frame, tag, envelope, write, follower)
        if not store.listen(job_id, after, parked):
            await store.wait(job_id, after)
            continue
        await parked.woken
        if write.transport.is_closing():
            return False
        if parked.after != after:
            after, woken_empty = parked.after, False
            last_write = max(last_write, parked.last_write)
        # A write while parked may have left the client lagging: wait for it here, visibly.
        await state.guarded(follower, write.drain())


async def _ended(state: State, job_id: str, after: int, write: TransportWriter) -> bool | None:
    """Whether following is over though no event said so: True past the job's `complete` event
    (a resume after the end), False if the client left (no write told us, as none was due)."""
    if write.transport.is_closing():
        return False
    if not state.store.is_live(job_id):
        job = await state.store.get_job(job_id)
        if job.status.is_final and after >= job.last_seq:
            return True
    return None


async def follow_firehose(
    state: State,
    follower: Follower,
    after: int,
    output: bool,
    frame: Frame,
    write: TransportWriter,
    heartbeat: bytes,
    envelope: Envelope | None = None,
    admit: Callable[[list[Event]], Awaitable[list[Event]]] | None = None,
    with_trace: bool = True,
    trace_frame: Callable[[Entry], bytes] = Entry.sse,
) -> None:
    """Write events of every job past global position `after` until the server closes; only
    those `admit` keeps, if given (a token limited to some jobs). With `with_trace`, the trace
    ledger's entries too, as they are written (`event: trace`, live only: they carry no `id:`,
    so a client's resume point stays the last job event's; `GET /trace` has the history), each
    framed by `trace_frame`."""
    store, trace = state.store, state.trace
    interval = state.settings.heartbeat_seconds
    last_write = time.monotonic()
    traced = trace.last_seq
    while not (state.closing or store.closed):
        entries = trace.after(traced) if with_trace else []
        if entries:
            traced = entries[-1].seq
            data = b"".join(trace_frame(e) for e in entries)
            if envelope is not None:
                data = envelope(data)
            await state.guarded(follower, write(data))
            last_write = time.monotonic()
            follower.events_sent += len(entries)
            follower.bytes_sent += len(data)
        events = await store.read_all(after, output=output, max_bytes=BATCH_BYTES)
        if events and admit is not None:
            after = events[-1].gid
            events = await admit(events)
            if not events:
                continue
        if events:
            data = b"".join(frame(e) for e in events)
            after = events[-1].gid
            if not data:
                continue  # a frame that skips these events (a profile's): no empty chunk, which ends the response
            if envelope is not None:
                data = envelope(data)
            await state.guarded(follower, write(data))
            last_write = time.monotonic()
            follower.events_sent += len(events)
            follower.bytes_sent += len(data)
            continue
        # Nothing of interest up to the newest event: skip past what was filtered out.
        after = max(after, store.last_gid())
        if write.transport.is_closing():
            return
        if time.monotonic() - last_write >= interval:
            await state.guarded(follower, write(heartbeat))
            last_write = time.monotonic()
        await store.wait_all(after)
