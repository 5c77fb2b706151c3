"""The load generator: one asyncio (uvloop) process holding every client connection of a scenario.

Clients are raw asyncio protocols (HTTP/1.1 with chunked bodies, SSE and WebSocket parsed here), so
that the generator costs as little as possible per byte and per event. Every command talks to the
driver (run.py) the same way: it connects its clients, prints `ready`, waits for a `go <time>` line
on stdin (the driver has then let the job start), prints `done <time>` when its clients are
finished, then one line of JSON with what it measured.

Fan-out checking is per client and exact: every client checks that it got every event seq once and
in order, that the bytes of each event are the same as every other client got for that seq, and,
reassembling lines split across events, that it got every line seq once and in order. Parsing an
event's JSON and its lines happens once per event (the first client to see it), not per client.
Latency = receipt time - the producer's timestamp in the line, for every line at every client,
counted in a histogram (receipt times are kept per event and crossed with the event's line
timestamps once the run is over, so the hot path does no per-line work).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
import uvloop
from common import LINE_BYTES, parse_line, percentile, raise_nofile

HOST = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# What clients do with the events they receive


class Sink(Protocol):
    done: asyncio.Future[float]

    def known_length(self, seq: int) -> int:
        """The byte length of event `seq` if it was seen (by another client) already, else 0."""
        ...

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None: ...

    def binary(self, n: int, t: float) -> None: ...

    def body(self, data: bytes | memoryview, t: float) -> None: ...


def _json_of_sse(frame: bytes) -> bytes:
    i = frame.index(b"\ndata: ") + 7
    return frame[i : frame.index(b"\n", i)]


def _int_after(head: bytes, key: bytes) -> int | None:
    i = head.find(key)
    if i < 0:
        return None
    i += len(key)
    j = i
    while j < len(head) and 48 <= head[j] <= 57:
        j += 1
    return int(head[i:j]) if j > i else None


class BulkSink:
    """Counts output bytes (from each output event's `data.length`) and checks offsets follow on."""

    def __init__(self, sse: bool) -> None:
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.sse = sse
        self.last_seq = 0
        self.seq_errors = 0
        self.offset_errors = 0
        self.output_bytes = 0
        self.wire_bytes = 0
        self.events = 0
        #: when the last output byte came: the end waits for the output's fsync after it
        self.last_output = 0.0

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None:
        if seq != self.last_seq + 1:
            self.seq_errors += 1
        self.last_seq = seq
        self.events += 1
        self.wire_bytes += end - start
        head = bytes(buf[start : min(end, start + 400)])
        if b'"type":"stdout"' in head or b'"type":"stderr"' in head:
            offset, length = _int_after(head, b'"offset":'), _int_after(head, b'"length":')
            if offset is None or length is None:  # another field order: decode it all
                raw = bytes(buf[start:end])
                data = orjson.loads(_json_of_sse(raw) if self.sse else raw)["data"]
                offset, length = data["offset"], data["length"]
            if offset != self.output_bytes:
                self.offset_errors += 1
            self.output_bytes = offset + length
            self.last_output = t
        elif b'"type":"complete"' in head and not self.done.done():
            self.done.set_result(t)

    def binary(self, n: int, t: float) -> None:
        self.output_bytes += n
        self.wire_bytes += n
        self.last_output = t

    def known_length(self, seq: int) -> int:
        return 0

    def body(self, data: bytes | memoryview, t: float) -> None:
        self.output_bytes += len(data)
        self.wire_bytes += len(data)
        if data:
            self.last_output = t

    def finish(self, t: float) -> None:
        if not self.done.done():
            self.done.set_result(t)


@dataclass(slots=True)
class Entry:
    """One event as the first client saw it, parsed once for all."""

    raw: bytes
    kind: str  # output | complete | other
    head: str = ""  # text up to the first newline: the end of the line split across events
    tail: str = ""  # text after the last newline: the start of a line the next event ends
    newline: bool = False
    first: int = -1  # seq of the first line wholly inside this event, -1 if none
    last: int = -1
    ts: list[float] = field(default_factory=list)  # the producer's timestamps of those lines
    ev_ts: float = 0.0  # when the server appended the event (its `ts`)
    recv: list[float] = field(default_factory=list)  # receipt time at each client


class Shared:
    """What the clients of a fan-out scenario share: the parsed events, the error counts."""

    def __init__(self, sse: bool, quantum: float) -> None:
        self.sse = sse
        self.quantum = quantum
        self.entries: dict[int, Entry] = {}
        self.boundary_hist: Counter[int] = Counter()
        self.mismatched = 0
        self.malformed = 0

    def entry(self, seq: int, buf: bytearray, start: int, end: int) -> Entry:
        raw = bytes(buf[start:end])
        ev = orjson.loads(_json_of_sse(raw) if self.sse else raw)
        if ev["seq"] != seq:
            self.malformed += 1
        kind = ev["type"]
        if kind not in ("stdout", "stderr"):
            e = Entry(raw, "complete" if kind == "complete" else "other")
        else:
            e = Entry(raw, "output", ev_ts=ev["ts"])
            self._lines(e, ev["data"]["text"])
        self.entries[seq] = e
        return e

    def _lines(self, e: Entry, text: str) -> None:
        first_nl = text.find("\n")
        if first_nl < 0:
            e.head = text
            return
        last_nl = text.rfind("\n")
        e.newline = True
        e.head, e.tail = text[:first_nl], text[last_nl + 1 :]
        if last_nl == first_nl:
            return
        expect = -1
        for line in text[first_nl + 1 : last_nl].split("\n"):
            try:
                seq, ts = parse_line(line)
            except ValueError:
                self.malformed += 1
                continue
            if expect >= 0 and seq != expect:
                self.malformed += 1
            if e.first < 0:
                e.first = seq
            e.last, expect = seq, seq + 1
            e.ts.append(ts)

    def latency_hists(self) -> dict[str, Counter[int]]:
        """In bins of `quantum` seconds: `total`, every (line, client) latency; split in two,
        `ingest` (line written -> the server's event `ts`, once per line: the pipe and the batch
        window) and `delivery` (event `ts` -> receipt, once per event and client: the fan-out)."""
        q = self.quantum
        total = Counter(self.boundary_hist)
        ingest: Counter[int] = Counter()
        delivery: Counter[int] = Counter()
        for e in self.entries.values():
            if not e.ts or not e.recv:
                continue
            recv = Counter(int(r / q) for r in e.recv)
            lines = Counter(int(ts / q) for ts in e.ts)
            evq = int(e.ev_ts / q)
            for lq, lc in lines.items():
                ingest[evq - lq] += lc
                for rq, rc in recv.items():
                    total[rq - lq] += rc * lc
            for rq, rc in recv.items():
                delivery[rq - evq] += rc
        return {"total": total, "ingest": ingest, "delivery": delivery}


class LineSink:
    """One fan-out client: checks event seqs, bytes, and line seqs; records receipt times."""

    __slots__ = (
        "output_events",
        "done",
        "dup",
        "events",
        "lines",
        "lost",
        "next_line",
        "partial",
        "seq",
        "shared",
        "seq_errors",
    )

    def __init__(self, shared: Shared) -> None:
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.shared = shared
        self.seq = 0
        self.seq_errors = 0
        self.events = 0
        self.output_events = 0
        self.partial = ""
        self.next_line = 0
        self.lines = 0
        self.lost = 0
        self.dup = 0

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None:
        if seq != self.seq + 1:
            self.seq_errors += 1
        self.seq = seq
        self.events += 1
        shared = self.shared
        e = shared.entries.get(seq)
        if e is None:
            e = shared.entry(seq, buf, start, end)
        elif len(e.raw) != end - start or not buf.startswith(e.raw, start):
            shared.mismatched += 1
        if e.kind == "output":
            self.output_events += 1
            self._output(e, t)
        elif e.kind == "complete" and not self.done.done():
            self.done.set_result(t)

    def _output(self, e: Entry, t: float) -> None:
        if not e.newline:
            self.partial += e.head
            return
        line = self.partial + e.head
        if line:
            try:
                seq, ts = parse_line(line)
            except ValueError:
                self.shared.malformed += 1
            else:
                self._expect(seq, seq)
                self.shared.boundary_hist[int((t - ts) / self.shared.quantum)] += 1
        if e.first >= 0:
            self._expect(e.first, e.last)
            e.recv.append(t)
        self.partial = e.tail

    def _expect(self, first: int, last: int) -> None:
        if first > self.next_line:
            self.lost += first - self.next_line
        elif first < self.next_line:
            self.dup += self.next_line - first
        self.lines += last - first + 1
        self.next_line = last + 1

    def binary(self, n: int, t: float) -> None:
        pass

    def known_length(self, seq: int) -> int:
        e = self.shared.entries.get(seq)
        return len(e.raw) if e is not None else 0

    def body(self, data: bytes | memoryview, t: float) -> None:
        pass


class RawShared:
    """What raw-frame viewers share: each frame as the first client saw it, keyed by its byte
    offset in the output (every client gets the same frames, as the server sends one per event).
    Lines are LINE_BYTES long from offset 0, so a frame's lines are found by arithmetic."""

    def __init__(self, quantum: float) -> None:
        self.quantum = quantum
        self.stream = bytearray()
        #: offset -> (the frame's bytes, the stamps of the lines it ends, receipt times)
        self.frames: dict[int, tuple[bytes, list[float], list[float]]] = {}
        self.mismatched = 0
        self.malformed = 0

    def frame(self, offset: int, data: bytes) -> tuple[bytes, list[float], list[float]]:
        if offset != len(self.stream):
            self.malformed += 1  # the first client to get here skipped or repeated bytes
        self.stream += data
        end = offset + len(data)
        first = max(0, -(-(offset - LINE_BYTES + 1) // LINE_BYTES))
        stamps: list[float] = []
        for k in range(first, (end - LINE_BYTES) // LINE_BYTES + 1):
            line = self.stream[k * LINE_BYTES : (k + 1) * LINE_BYTES - 1].decode(errors="replace")
            try:
                seq, ts = parse_line(line)
            except ValueError:
                self.malformed += 1
                continue
            if seq != k:
                self.malformed += 1
            stamps.append(ts)
        entry = self.frames[offset] = (data, stamps, [])
        return entry

    def latency_hist(self) -> Counter[int]:
        q = self.quantum
        total: Counter[int] = Counter()
        for _, stamps, recv in self.frames.values():
            if not stamps or not recv:
                continue
            received = Counter(int(r / q) for r in recv)
            for lq, lc in Counter(int(ts / q) for ts in stamps).items():
                for rq, rc in received.items():
                    total[rq - lq] += rc * lc
        return total


class RawLineSink:
    """One raw-frame viewer: its bytes must be the job's output, whole and in order."""

    __slots__ = ("done", "frames", "offset", "shared")

    def __init__(self, shared: RawShared) -> None:
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.shared = shared
        self.offset = 0
        self.frames = 0

    def raw(self, buf: bytearray, start: int, end: int, t: float) -> None:
        shared = self.shared
        entry = shared.frames.get(self.offset)
        if entry is None:
            entry = shared.frame(self.offset, bytes(buf[start:end]))
        elif len(entry[0]) != end - start or not buf.startswith(entry[0], start):
            shared.mismatched += 1
        entry[2].append(t)
        self.offset += end - start
        self.frames += 1

    def finish(self, t: float) -> None:
        if not self.done.done():
            self.done.set_result(t)

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None:
        pass

    def binary(self, n: int, t: float) -> None:
        pass

    def known_length(self, seq: int) -> int:
        return 0

    def body(self, data: bytes | memoryview, t: float) -> None:
        pass


class MuxEntry:
    """One `/ws` event frame as the first connection saw it, parsed once for all."""

    __slots__ = ("complete", "first", "job", "last", "recv", "seq", "stamps")

    def __init__(self, raw: bytes) -> None:
        msg = orjson.loads(raw)
        self.job: str = msg["job"]
        self.seq: int = msg["seq"]
        self.complete = msg["event"] == "complete"
        #: the lines `I TS` of a stdout event: the first and last I, and every TS
        self.first = self.last = -1
        self.stamps: list[float] = []
        self.recv: list[float] = []
        if msg["event"] == "stdout":
            for line in msg["data"]["text"].splitlines():
                i, ts = line.split(" ")
                if self.first < 0:
                    self.first = int(i)
                self.last = int(i)
                self.stamps.append(float(ts))


class MuxShared:
    def __init__(self, quantum: float) -> None:
        self.quantum = quantum
        #: the frame's head (job and seq) -> its entry
        self.entries: dict[bytes, MuxEntry] = {}
        self.malformed = 0

    def latency_hist(self) -> Counter[int]:
        q = self.quantum
        total: Counter[int] = Counter()
        for e in self.entries.values():
            if not e.stamps or not e.recv:
                continue
            received = Counter(int(r / q) for r in e.recv)
            for lq, lc in Counter(int(ts / q) for ts in e.stamps).items():
                for rq, rc in received.items():
                    total[rq - lq] += rc * lc
        return total


class MuxSink:
    """One `/ws` connection subscribed to "*": every job's events once and in order, and each
    job's lines 1..L in order (the lines of bench/run.py's mux_producer)."""

    __slots__ = (
        "complete",
        "done",
        "jobs",
        "lines",
        "lost",
        "dup",
        "next_line",
        "received",
        "seq",
        "seq_errors",
        "shared",
        "subscribed",
    )

    def __init__(self, shared: MuxShared, jobs: int, lines: int) -> None:
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[float] = loop.create_future()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.shared, self.jobs, self.lines = shared, jobs, lines
        self.seq: dict[str, int] = {}
        self.next_line: dict[str, int] = {}
        self.complete = self.received = self.lost = self.dup = self.seq_errors = 0

    def text(self, buf: bytearray, start: int, end: int, t: float) -> None:
        if not buf.startswith(b'{"type":"event"', start):
            if buf.startswith(b'{"type":"subscribed"', start) and not self.subscribed.done():
                self.subscribed.set_result(None)
            return
        cut = buf.find(b',"event"', start, start + 120)
        if cut < 0:
            self.shared.malformed += 1
            return
        head = bytes(buf[start:cut])
        e = self.shared.entries.get(head)
        if e is None:
            try:
                e = self.shared.entries[head] = MuxEntry(bytes(buf[start:end]))
            except (ValueError, KeyError):
                self.shared.malformed += 1
                return
        self.seen(e, t)

    def seen(self, e: MuxEntry, t: float) -> None:
        """Check one event frame of this connection: its seq, its lines."""
        job, seqs, next_line = e.job, self.seq, self.next_line
        if e.seq != seqs.get(job, 0) + 1:
            self.seq_errors += 1
        seqs[job] = e.seq
        if e.first >= 0:
            want = next_line.get(job, 1)
            if e.first > want:
                self.lost += e.first - want
            elif e.first < want:
                self.dup += want - e.first
            next_line[job] = e.last + 1
            self.received += e.last - e.first + 1
            e.recv.append(t)
        if e.complete:
            self.lost += max(0, self.lines + 1 - next_line.get(job, 1))
            self.complete += 1
            if self.complete >= self.jobs and not self.done.done():
                self.done.set_result(t)

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None:
        pass

    def binary(self, n: int, t: float) -> None:
        pass

    def known_length(self, seq: int) -> int:
        return 0

    def body(self, data: bytes | memoryview, t: float) -> None:
        pass


class IdleSink:
    """A client that only stays connected."""

    def __init__(self) -> None:
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.events = 0

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None:
        self.events += 1

    def binary(self, n: int, t: float) -> None:
        pass

    def known_length(self, seq: int) -> int:
        return 0

    def body(self, data: bytes | memoryview, t: float) -> None:
        pass


# --------------------------------------------------------------------------------------------
# Transports


def http_request(
    path: str,
    port: int,
    token: str | None,
    headers: Sequence[str] = (),
    method: str = "GET",
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "User-Agent: jobcast-bench"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines.extend(headers)
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Client(asyncio.Protocol):
    """Response head first (`ready` resolves with the status line), then `_payload(data, t)`."""

    def __init__(self, request: bytes, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.sink = sink
        self.ready: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self.t = 0.0  # when the data being handled was received

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed before the response head"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._closed(time.time())

    def _closed(self, t: float) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.t = t = time.time()
        if not self.ready.done():
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            try:
                self._start(head)
            except ConnectionError as e:
                self.ready.set_exception(e)
                self.close()
                return
            self.ready.set_result(head)
        if data:
            self._payload(data, t)

    def _start(self, head: bytes) -> None:
        pass

    def _payload(self, data: bytes, t: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HttpStream(_Client):
    """A streaming GET: de-chunks the body and hands it on (SSE frames split here when `sse`)."""

    def __init__(self, request: bytes, sink: Sink, *, sse: bool) -> None:
        super().__init__(request, sink)
        self.sse = sse
        self.chunked = False
        self._pending = b""
        self._remain = 0  # bytes of chunk data still to come
        self._skip = 0  # bytes of the CRLF after chunk data still to skip
        self._buf = bytearray()
        self._scan = 0  # where to go on looking for the end of an SSE message
        self._need = 0  # bytes the buffer must hold before it is worth looking again
        self.eof = False

    def _start(self, head: bytes) -> None:
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"unexpected response: {head[:200]!r}")
        self.chunked = b"transfer-encoding: chunked" in head.lower()

    def _closed(self, t: float) -> None:
        finish = getattr(self.sink, "finish", None)
        if finish is not None:
            finish(t)

    def _payload(self, data: bytes, t: float) -> None:
        if not self.chunked:
            self._body(data, t)
            return
        if self._pending:
            data, self._pending = self._pending + data, b""
        view = memoryview(data)  # chunk data is handed on without copying
        pos, n = 0, len(data)
        while pos < n:
            if self._remain:
                take = min(self._remain, n - pos)
                self._body(view[pos : pos + take], t)
                pos += take
                self._remain -= take
                if not self._remain:
                    self._skip = 2
            elif self._skip:
                step = min(self._skip, n - pos)
                pos += step
                self._skip -= step
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self._pending = data[pos:]
                    return
                size = int(data[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                if size == 0:
                    self.eof = True
                    self._closed(t)
                    return
                self._remain = size

    def _body(self, data: bytes | memoryview, t: float) -> None:
        if not self.sse:
            self.sink.body(data, t)
            return
        buf = self._buf
        buf += data
        if len(buf) < self._need:
            return
        pos, n = 0, len(buf)
        while pos < n:
            end = self._frame_end(buf, pos)
            if end < 0:
                break
            pos = end
        if pos:
            del buf[:pos]
            self._scan = max(0, self._scan - pos)
            self._need = max(0, self._need - pos)

    def _frame_end(self, buf: bytearray, pos: int) -> int:
        """Hand on the SSE message at `pos`; return where the next starts, -1 if it is incomplete.

        A message whose seq the sink already knows (another client got it first) has a known
        length: it is not scanned for its end, only compared byte for byte by the sink.
        """
        seq = -1
        if buf.startswith(b"id: ", pos):
            nl = buf.find(b"\n", pos, pos + 40)
            if nl < 0:
                return -1
            seq = int(buf[pos + 4 : nl])
            size = self.sink.known_length(seq)
            if size:
                if pos + size > len(buf):
                    self._need = pos + size
                    return -1
                self.sink.event(seq, buf, pos, pos + size, self.t)
                return pos + size
        end = buf.find(b"\n\n", max(pos, self._scan))
        if end < 0:
            self._scan = max(pos, len(buf) - 1)
            return -1
        end += 2
        if seq >= 0:
            self.sink.event(seq, buf, pos, end, self.t)
        return end


_WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class WSStream(_Client):
    """A WebSocket client: text frames are events (JSON), binary frames raw output."""

    def __init__(self, request: bytes, sink: Sink) -> None:
        super().__init__(request, sink)
        self._buf = bytearray()
        self._need = 0
        self.close_code: int | None = None

    def _start(self, head: bytes) -> None:
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"unexpected response: {head[:200]!r}")

    def _closed(self, t: float) -> None:
        finish = getattr(self.sink, "finish", None)
        if finish is not None:
            finish(t)

    def _payload(self, data: bytes, t: float) -> None:
        buf = self._buf
        buf += data
        if len(buf) < self._need:
            return
        pos, n = 0, len(buf)
        while n - pos >= 2:
            size, hl = buf[pos + 1] & 0x7F, 2
            if size == 126:
                size, hl = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                size, hl = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < hl + size or n - pos < hl:
                self._need = pos + hl + size
                break
            self._frame(buf[pos] & 0x0F, buf, pos + hl, pos + hl + size, t)
            pos += hl + size
        if pos:
            del buf[:pos]
            self._need = max(0, self._need - pos)

    def _frame(self, opcode: int, buf: bytearray, start: int, end: int, t: float) -> None:
        if opcode == 1:
            text = getattr(self.sink, "text", None)
            if text is not None:
                text(buf, start, end, t)
            elif buf.startswith(b'{"seq":', start):
                comma = buf.find(b",", start + 7, start + 32)
                self.sink.event(int(buf[start + 7 : comma]), buf, start, end, t)
        elif opcode == 2:
            raw = getattr(self.sink, "raw", None)
            if raw is not None:
                raw(buf, start, end, t)
            else:
                self.sink.binary(end - start, t)
        elif opcode == 9 and self.transport is not None:
            self.transport.write(_masked(0xA, bytes(buf[start:end])))
        elif opcode == 8:
            self.close_code = (
                int.from_bytes(buf[start : start + 2], "big") if end - start >= 2 else 1005
            )
            if self.transport is not None:
                self.transport.write(_masked(0x8, bytes(buf[start : start + 2])))
                self.transport.close()


class MuxStream(WSStream):
    """A WSStream for a MuxSink: the frame loop and the sink's checks of each event frame in
    one loop. At 100 connections x 5,000 events a second the client shares its CPU with the
    jobs, and the generic loop's calls per frame are what a run would measure otherwise; the
    checks are MuxSink.seen, the same as MuxSink.text's."""

    def _payload(self, data: bytes, t: float) -> None:
        buf = self._buf
        buf += data
        if len(buf) < self._need:
            return
        sink = self.sink
        assert isinstance(sink, MuxSink)
        shared, seen = sink.shared, sink.seen
        entries = shared.entries
        pos, n = 0, len(buf)
        while n - pos >= 2:
            size, hl = buf[pos + 1] & 0x7F, 2
            if size >= 126:
                hl = 4 if size == 126 else 10
                if n - pos < hl:
                    self._need = pos + hl
                    break
                size = int.from_bytes(buf[pos + 2 : pos + hl], "big")
            start = pos + hl
            end = start + size
            if end > n:
                self._need = end
                break
            if buf[pos] & 0x0F != 1 or not buf.startswith(b'{"type":"event"', start):
                self._frame(buf[pos] & 0x0F, buf, start, end, t)
                pos = end
                continue
            pos = end
            cut = buf.find(b',"event"', start, start + 120)
            if cut < 0:
                shared.malformed += 1
                continue
            head = bytes(buf[start:cut])
            e = entries.get(head)
            if e is None:
                try:
                    e = entries[head] = MuxEntry(bytes(buf[start:end]))
                except (ValueError, KeyError):
                    shared.malformed += 1
                    continue
            seen(e, t)
        if pos:
            del buf[:pos]
            self._need = max(0, self._need - pos)


def ws_request(path: str, port: int, token: str | None) -> bytes:
    return http_request(
        path,
        port,
        token,
        [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {_WS_KEY}",
            "Sec-WebSocket-Version: 13",
        ],
    )


def make_client(
    kind: str, job: str, after: int, port: int, token: str | None, sink: Sink
) -> _Client:
    """kind: sse | ws | ws-raw | log."""
    if kind == "sse":
        req = http_request(
            f"/jobs/{job}/events?after={after}", port, token, ["Accept: text/event-stream"]
        )
        return HttpStream(req, sink, sse=True)
    if kind == "log":
        return HttpStream(
            http_request(f"/jobs/{job}/log?stream=stdout&follow=1", port, token), sink, sse=False
        )
    fmt = "&format=raw" if kind == "ws-raw" else ""
    return WSStream(ws_request(f"/jobs/{job}/ws?after={after}{fmt}", port, token), sink)


async def connect(
    n: int, factory: Callable[[int], _Client], port: int, concurrency: int = 50
) -> list[_Client]:
    """Open `n` clients, at most `concurrency` handshakes at a time; each ready (head received)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> _Client:
        async with gate:
            for attempt in range(10):
                client = factory(i)
                try:
                    await loop.create_connection(lambda c=client: c, HOST, port)  # type: ignore[misc]
                    await asyncio.wait_for(client.ready, 30)
                    return client
                except (TimeoutError, OSError):
                    client.close()
                    if attempt == 9:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
            raise AssertionError("unreachable")

    return list(await asyncio.gather(*(one(i) for i in range(n))))


# --------------------------------------------------------------------------------------------
# Talking to the driver, and small HTTP calls


async def handshake() -> float:
    """Print `ready`, wait for `go <t>` on stdin; return t (when the driver let the job start)."""
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    parts = line.split()
    if not parts or parts[0] != "go":
        raise SystemExit(f"expected `go <time>` on stdin, got {line!r}")
    return float(parts[1]) if len(parts) > 1 else time.time()


def announce_done(t: float) -> None:
    print(f"done {t:.6f}", flush=True)


async def call(
    port: int, token: str | None, path: str, method: str = "GET", body: Any = None
) -> Any:
    """One JSON request on its own connection."""
    payload = orjson.dumps(body) if body is not None else b""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(http_request(path, port, token, ["Connection: close"], method, payload))
        data = await reader.read()
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        rest = _dechunk(rest)
    if not head.split(b" ", 2)[1].startswith(b"2"):
        raise RuntimeError(f"{method} {path}: {head.splitlines()[0]!r} {rest[:300]!r}")
    return orjson.loads(rest)


def _dechunk(body: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[eol + 2 : eol + 2 + size])
        pos = eol + 4 + size


class LagMonitor:
    """How late this event loop wakes up: a sign that the generator itself is saturated."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - t - self.interval)

    def stop(self) -> dict[str, float]:
        self._task.cancel()
        lags = sorted(self.lags) or [0.0]
        return {
            "loop_lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000,
            "loop_lag_max_ms": lags[-1] * 1000,
        }


async def wait_done(sinks: Sequence[Sink], within: float) -> tuple[int, float]:
    """(how many finished within `within` seconds, when the last of them did)."""
    futures = [s.done for s in sinks]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), within)
    ends = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
    return len(ends), max(ends, default=time.time())


# --------------------------------------------------------------------------------------------
# Commands


async def cmd_fanout(a: argparse.Namespace) -> dict[str, Any]:
    shared = Shared(sse=a.kind == "sse", quantum=a.quantum_ms / 1000)
    sinks = [LineSink(shared) for _ in range(a.clients)]
    clients = await connect(
        a.clients, lambda i: make_client(a.kind, a.job, 0, a.port, a.token, sinks[i]), a.port
    )
    t_go = await handshake()
    lag = LagMonitor()
    cpu0 = time.process_time()
    finished, t_end = await wait_done(sinks, a.timeout)
    cpu = time.process_time() - cpu0
    announce_done(t_end)
    lags = lag.stop()
    for c in clients:
        c.close()
    job = await call(a.port, a.token, f"/jobs/{a.job}")
    total = job["stdout_bytes"] // LINE_BYTES
    lost = sum(s.lost + max(0, total - s.next_line) for s in sinks)
    hists = shared.latency_hists()
    return {
        "clients": a.clients,
        "finished": finished,
        "lines_per_client": total,
        "lines_received": sum(s.lines for s in sinks),
        "lost": lost,
        "duplicated": sum(s.dup for s in sinks),
        "event_seq_errors": sum(s.seq_errors for s in sinks),
        "mismatched_events": shared.mismatched,
        "malformed": shared.malformed,
        "output_events": sum(s.output_events for s in sinks),
        "t_go": t_go,
        "t_end": t_end,
        "client_cpu_s": cpu,
        "quantum_ms": a.quantum_ms,
        "hist": sorted(hists["total"].items()),
        "hist_ingest": sorted(hists["ingest"].items()),
        "hist_delivery": sorted(hists["delivery"].items()),
        **lags,
    }


async def cmd_viewers(a: argparse.Namespace) -> dict[str, Any]:
    """`fanout` for raw-frame viewers (`?format=raw`): the same figures, from bytes alone."""
    shared = RawShared(a.quantum_ms / 1000)
    sinks = [RawLineSink(shared) for _ in range(a.clients)]
    clients = await connect(
        a.clients, lambda i: make_client("ws-raw", a.job, 0, a.port, a.token, sinks[i]), a.port
    )
    t_go = await handshake()
    lag = LagMonitor()
    cpu0 = time.process_time()
    finished, t_end = await wait_done(sinks, a.timeout)
    cpu = time.process_time() - cpu0
    announce_done(t_end)
    lags = lag.stop()
    for c in clients:
        c.close()
    job = await call(a.port, a.token, f"/jobs/{a.job}")
    total = job["stdout_bytes"] // LINE_BYTES
    received = sum(s.offset // LINE_BYTES for s in sinks)
    return {
        "clients": a.clients,
        "finished": finished,
        "lines_per_client": total,
        "lines_received": received,
        "lost": sum(max(0, job["stdout_bytes"] - s.offset) for s in sinks) // LINE_BYTES,
        "duplicated": sum(max(0, s.offset - job["stdout_bytes"]) for s in sinks) // LINE_BYTES,
        "event_seq_errors": 0,
        "mismatched_events": shared.mismatched,
        "malformed": shared.malformed,
        "output_events": sum(s.frames for s in sinks),
        "t_go": t_go,
        "t_end": t_end,
        "client_cpu_s": cpu,
        "quantum_ms": a.quantum_ms,
        "hist": sorted(shared.latency_hist().items()),
        "hist_ingest": [],
        "hist_delivery": [],
        **lags,
    }


async def cmd_mux(a: argparse.Namespace) -> dict[str, Any]:
    """`--clients` connections to `/ws`, each subscribed to "*" before the `--jobs` jobs exist,
    each job printing `--lines` lines; `ready` once all are subscribed."""
    shared = MuxShared(a.quantum_ms / 1000)
    sinks = [MuxSink(shared, a.jobs, a.lines) for _ in range(a.clients)]
    request = ws_request("/ws", a.port, a.token)
    clients = await connect(a.clients, lambda i: MuxStream(request, sinks[i]), a.port)
    subscribe = _masked(0x1, b'{"type":"subscribe","jobs":["*"]}')
    for c in clients:
        assert c.transport is not None
        c.transport.write(subscribe)
    await asyncio.wait_for(asyncio.gather(*(s.subscribed for s in sinks)), 120)
    t_go = await handshake()
    cpu0 = time.process_time()
    finished, t_end = await wait_done(sinks, a.timeout)
    cpu = time.process_time() - cpu0
    announce_done(t_end)
    for c in clients:
        c.close()
    hist = shared.latency_hist()
    q = a.quantum_ms
    return {
        "t_go": t_go,
        "t_end": t_end,
        "expected": a.clients * a.jobs * a.lines,
        "received": sum(s.received for s in sinks),
        "lost": sum(s.lost for s in sinks),
        "duplicated": sum(s.dup for s in sinks),
        "malformed": shared.malformed,
        "seq_errors": sum(s.seq_errors for s in sinks),
        "incomplete_connections": a.clients - finished,
        "p50_ms": (percentile(hist, 50) or 0) * q,
        "p99_ms": (percentile(hist, 99) or 0) * q,
        "max_ms": max(hist, default=0) * q,
        "client_cpu_s": cpu,
    }


async def cmd_bulk(a: argparse.Namespace) -> dict[str, Any]:
    sink = BulkSink(sse=a.kind == "sse")
    (client,) = await connect(
        1, lambda i: make_client(a.kind, a.job, 0, a.port, a.token, sink), a.port
    )
    t_go = await handshake()
    cpu0 = time.process_time()
    finished, t_end = await wait_done([sink], a.timeout)
    cpu = time.process_time() - cpu0
    announce_done(t_end)
    client.close()
    return {
        "finished": finished,
        "output_bytes": sink.output_bytes,
        "wire_bytes": sink.wire_bytes,
        "events": sink.events,
        "seq_errors": sink.seq_errors,
        "offset_errors": sink.offset_errors,
        "seconds": t_end - t_go,
        "seconds_to_last_byte": sink.last_output - t_go,
        "client_cpu_s": cpu,
        "close_code": getattr(client, "close_code", None),
    }


async def cmd_idle(a: argparse.Namespace) -> dict[str, Any]:
    sinks = [IdleSink() for _ in range(a.clients)]
    clients = await connect(
        a.clients, lambda i: make_client(a.kind, a.job, 0, a.port, a.token, sinks[i]), a.port
    )
    await asyncio.sleep(0.5)  # let every client get the job's first events
    await handshake()
    alive = sum(1 for c in clients if not c.closed.done())
    announce_done(time.time())
    for c in clients:
        c.close()
    return {"clients": a.clients, "alive": alive, "events": sum(s.events for s in sinks)}


async def _first_frame(port: int, request: bytes, marker: bytes, t0: float) -> float:
    """Seconds from t0 until `marker` shows up on a new connection that sends `request`."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        seen = b""
        while marker not in seen[-len(marker) - 65536 :]:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError(f"stream ended before {marker!r}: {seen[-3000:]!r}")
            seen += data
        return time.perf_counter() - t0
    finally:
        writer.close()


class _Firehose:
    """A `/stream?output=1` connection opened beforehand: when did a job's first output arrive."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.seen: dict[str, float] = {}
        self.event_ts: dict[str, float] = {}  # the server's `ts` of each job's first output event

    def event(self, seq: int, buf: bytearray, start: int, end: int, t: float) -> None:
        head = bytes(buf[start : min(end, start + 300)])
        if b"event: stdout" not in head:
            return
        i = head.find(b'"job":"') + 7
        job = head[i : head.find(b'"', i)].decode()
        if job in self.event_ts:
            return
        now = time.perf_counter()
        ts = _float_after(head, b'"ts":')
        self.event_ts[job] = ts if ts is not None else 0.0
        fut = self.waiting.pop(job, None)
        if fut is not None and not fut.done():
            fut.set_result(now)
        else:
            self.seen.setdefault(job, now)

    def binary(self, n: int, t: float) -> None:
        pass

    def known_length(self, seq: int) -> int:
        return 0

    def body(self, data: bytes | memoryview, t: float) -> None:
        pass


def _float_after(head: bytes, key: bytes) -> float | None:
    i = head.find(key)
    if i < 0:
        return None
    i += len(key)
    j = i
    while j < len(head) and head[j] in b"0123456789.eE+-":
        j += 1
    return float(head[i:j])


async def _keepalive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> Any:
    """One request on a kept-alive connection; the JSON body of its 2xx response."""
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 2"):
        raise RuntimeError(f"{req.split(b' ', 2)[:2]!r}: {head.splitlines()[0]!r} {body[:300]!r}")
    return orjson.loads(body)


async def cmd_ttfb(a: argparse.Namespace) -> dict[str, Any]:
    """POST /jobs `echo hi`, then the first output byte at a client: over SSE opened after the POST
    returns (what `jobcast run` sees), or on a firehose connection opened beforehand. Also where
    the time goes: POST -> job started (`started_at`), -> first output event (its `ts`), -> client.
    """
    loop = asyncio.get_running_loop()
    fire = _Firehose()
    req = http_request("/stream?output=1", a.port, a.token, ["Accept: text/event-stream"])
    firehose = HttpStream(req, fire, sse=True)  # type: ignore[arg-type]
    await loop.create_connection(lambda: firehose, HOST, a.port)
    await firehose.ready
    await handshake()
    reader, writer = await asyncio.open_connection(HOST, a.port)
    body = orjson.dumps({"command": a.shell})
    post = http_request("/jobs", a.port, a.token, method="POST", body=body)
    keys = ("post", "sse", "firehose", "to_started", "started_to_event", "event_to_firehose")
    res: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(a.warmup + a.n):
        if i == a.warmup:
            res = {k: [] for k in keys}
        t0, t0_wall = time.perf_counter(), time.time()
        job = await _keepalive(reader, writer, post)
        res["post"].append(time.perf_counter() - t0)
        fut: asyncio.Future[float] = loop.create_future()
        if job["id"] in fire.seen:
            fut.set_result(fire.seen.pop(job["id"]))
        else:
            fire.waiting[job["id"]] = fut
        sse = http_request(
            f"/jobs/{job['id']}/events", a.port, a.token, ["Accept: text/event-stream"]
        )
        res["sse"].append(await _first_frame(a.port, sse, b"event: stdout", t0))
        t_fire = await asyncio.wait_for(fut, 10)
        res["firehose"].append(t_fire - t0)
        job = await _keepalive(reader, writer, http_request(f"/jobs/{job['id']}", a.port, a.token))
        ev_ts = fire.event_ts.pop(job["id"])
        res["to_started"].append(job["started_at"] - t0_wall)
        res["started_to_event"].append(ev_ts - job["started_at"])
        res["event_to_firehose"].append(t0_wall + (t_fire - t0) - ev_ts)
        await asyncio.sleep(a.pause)
    writer.close()
    firehose.close()
    announce_done(time.time())
    return {k: [round(x * 1000, 4) for x in v] for k, v in res.items()}


async def cmd_resume(a: argparse.Namespace) -> dict[str, Any]:
    """Open /jobs/{id}/events with Last-Event-ID: time to the first event, `n` times."""
    await handshake()
    times = []
    for _ in range(a.n):
        req = http_request(
            f"/jobs/{a.job}/events",
            a.port,
            a.token,
            ["Accept: text/event-stream", f"Last-Event-ID: {a.after}"],
        )
        t0 = time.perf_counter()
        times.append(await _first_frame(a.port, req, b"\nid: ", t0) * 1000)
    announce_done(time.time())
    return {"ms": [round(x, 4) for x in times]}


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]] = {
    "fanout": cmd_fanout,
    "viewers": cmd_viewers,
    "mux": cmd_mux,
    "bulk": cmd_bulk,
    "idle": cmd_idle,
    "ttfb": cmd_ttfb,
    "resume": cmd_resume,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=os.environ.get("JOBCAST_TOKEN"))
    parser.add_argument("--job", help="the job's id")
    parser.add_argument("--kind", default="sse", choices=["sse", "ws", "ws-raw", "log"])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=500, help="mux: jobs each connection follows")
    parser.add_argument("--lines", type=int, default=100, help="mux: lines each job prints")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the clients to finish"
    )
    parser.add_argument("--quantum-ms", type=float, default=0.1, help="latency histogram bin")
    parser.add_argument("--n", type=int, default=200, help="ttfb/resume: how many tries")
    parser.add_argument("--warmup", type=int, default=5, help="ttfb: tries not counted, first")
    parser.add_argument("--pause", type=float, default=0.01, help="ttfb: seconds between jobs")
    parser.add_argument("--shell", default="echo hi", help="ttfb: the job's shell command")
    parser.add_argument("--after", type=int, default=0, help="resume: Last-Event-ID")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    raise_nofile()
    result = uvloop.run(COMMANDS[args.command](args))
    print(orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main()
