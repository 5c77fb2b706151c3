"""Cursor -> bytes: the one loop every streaming transport runs for a follower.

A follower is a position in a job's log. It reads what is past its position (from the store's
in-memory tail when near the end, from storage when far behind), writes it in one joined write, and
waits at the tail for the shared wake-up. No queue per client: a slow client only falls behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from ..models import Event, EventType
from .state import Follower, State, Writer

__all__ = [
    "BATCH_BYTES",
    "chunked",
    "follow_firehose",
    "follow_job",
    "transport_writer",
]

#: the most one joined write carries to one client
BATCH_BYTES = 256 * 1024
#: joins up to this size are cached on the batch's last event and shared by every client at that cursor
_SHARED_JOIN = BATCH_BYTES

#: past this much unsent data a writer waits for the client to read
_HIGH_WATER = 64 * 1024

Frame = Callable[[Event], bytes]
Envelope = Callable[[bytes], bytes]


def chunked(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk, so a streaming response can be written past aiohttp's writer."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def transport_writer(request: web.BaseRequest, *, chunk: bool = False) -> Writer:
    """Write bytes straight to the connection, waiting only when the client lags.

    aiohttp's own writer copies (and for chunked responses frames) every write for every client;
    the bytes here are built once per batch and shared, so each client costs one `write` call.
    With `chunk`, each write becomes one HTTP chunk, its header and trailer sent beside the data
    rather than joined to it (for bytes no other client shares, such as `/log`'s).
    """
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")

    async def write(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        if chunk:
            transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            transport.write(data)
        if transport.get_write_buffer_size() > _HIGH_WATER:
            await request.writer.drain()

    return write


def _join(events: list[Event], frame: Frame, tag: str, envelope: Envelope | None) -> bytes:
    last = events[-1]
    key = f"join:{tag}:{events[0].seq}:{events[0].gid}"
    out = last.cache.get(key)
    if out is None:
        out = b"".join(frame(e) for e in events)
        if out and envelope is not None:
            out = envelope(out)
        if len(out) <= _SHARED_JOIN:
            last.cache[key] = out
    return out


async def follow_job(
    state: State,
    follower: Follower,
    job_id: str,
    after: int,
    frame: Frame,
    tag: str,
    write: Writer,
    heartbeat: bytes | None = None,
    envelope: Envelope | None = None,
) -> bool:
    """Write the job's events past `after` until its `complete` event; True if that was reached.

    `frame` turns an event into the bytes to send (b"" to skip it) and `envelope`, if given, wraps
    each joined batch (an HTTP chunk); `tag` names that encoding, so joins of the same events in
    the same encoding are built once for every client. Returns False when the server is closing
    or the client has gone. Raises whatever `write` raises when the client goes away.
    """
    store, stats = state.store, state.stats
    interval = state.settings.heartbeat_seconds
    last_write = time.monotonic()
    woken_empty = False
    while True:
        events = await store.read(job_id, after, BATCH_BYTES)
        if events:
            woken_empty = False
            data = _join(events, frame, tag, envelope)
            after = events[-1].seq
            if data:
                # The hot path, once per wake-up per client: one joined write, nothing else.
                last_write = follower.blocked_since = time.monotonic()
                await write(data)
                follower.blocked_since = None
                stats.events_sent += len(events)
                stats.bytes_sent += len(data)
            if events[-1].type is EventType.COMPLETE:
                return True
            continue
        if state.closing or store.closed:
            return False
        if woken_empty:
            # Woken with nothing new: a tick (about once a second), or the job ended before we
            # came. Only here the slower checks, never after each event.
            if follower.transport is not None and follower.transport.is_closing():
                return False  # the client left; no write told us, as none was due
            if not store.is_live(job_id):
                job = await store.get_job(job_id)
                if job.status.is_final and after >= job.last_seq:
                    return True  # resumed past the `complete` event
            if heartbeat is not None and time.monotonic() - last_write >= interval:
                await state.guarded(follower, write(heartbeat))
                last_write = time.monotonic()
        await store.wait(job_id, after)
        woken_empty = True


async def follow_firehose(
    state: State,
    follower: Follower,
    after: int,
    output: bool,
    frame: Frame,
    write: Writer,
    heartbeat: bytes,
    envelope: Envelope | None = None,
) -> None:
    """Write events of every job past global position `after` until the server closes."""
    store, stats = state.store, state.stats
    interval = state.settings.heartbeat_seconds
    last_write = time.monotonic()
    while not (state.closing or store.closed):
        events = await store.read_all(after, output=output, max_bytes=BATCH_BYTES)
        if events:
            data = b"".join(frame(e) for e in events)
            if envelope is not None:
                data = envelope(data)
            after = events[-1].gid
            await state.guarded(follower, write(data))
            last_write = time.monotonic()
            stats.events_sent += len(events)
            stats.bytes_sent += len(data)
            continue
        # Nothing of interest up to the newest event: skip past what was filtered out.
        after = max(after, store.last_gid())
        if follower.transport is not None and follower.transport.is_closing():
            return
        if time.monotonic() - last_write >= interval:
            await state.guarded(follower, write(heartbeat))
            last_write = time.monotonic()
        await store.wait_all(after)
