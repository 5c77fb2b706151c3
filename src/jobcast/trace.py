"""The trace ledger: `<data-dir>/trace.jsonl`, one JSON object a line per operation, append-only.

Each entry is `{"seq", "ts", "who", "op", "job", "outcome", "detail"}`; `seq` counts up across
rotations and restarts, so it is a cursor (`GET /trace?after=SEQ`).

Appends go to one writer thread, which writes every entry queued meanwhile in one `write(2)` and
then resolves their futures: `record` returns once the entry is in the kernel's page cache, so it
survives the server being killed (as the store's commits do, `synchronous=NORMAL`). It is fsynced
at most once a second, at rotation and at close, not per entry: on ext4 an fsync waits for every
job's dirty output (100+ ms under a fast writer), which no `POST /jobs` should wait for. A power
cut may thus lose the last second of the ledger.

A crash can leave a torn last line: readers skip any line that is not a JSON object, and the first
append after opening starts on a new line. Past `max_bytes` the file is renamed `trace.jsonl.1`
(the older ones shifting to `.2`, ...) and `keep_files` of them are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["OPS", "TRACE_NAME", "Entry", "Trace"]

logger = logging.getLogger("jobcast.trace")

TRACE_NAME = "trace.jsonl"

#: every operation the ledger records
OPS = frozenset(
    {
        "job.create",
        "job.start",
        "job.finish",
        "job.cancel",
        "job.input",
        "job.signal",
        "job.interrupt",
        "job.delete",
        "auth.fail",
        "policy.deny",
        "paste.create",
        "webhook.deliver",
    }
)

_BLOCK = 64 * 1024
#: how often written entries are fsynced (seconds)
_SYNC_EVERY = 1.0


@dataclass(slots=True, eq=False)
class Entry:
    """One ledger entry, its JSON line encoded once (the file and every firehose client)."""

    seq: int
    data: dict[str, Any]
    line: bytes
    #: its firehose frame, built on first use and shared by every client
    frame: bytes = field(default=b"", repr=False)

    def sse(self) -> bytes:
        if not self.frame:
            self.frame = b"event: trace\ndata: " + self.line[:-1] + b"\n\n"
        return self.frame


class Trace:
    """The ledger of one data dir. `open()` on the loop before `record`; `close()` at the end."""

    def __init__(
        self, data_dir: Path, *, max_bytes: int, keep_files: int, recent: int = 1000
    ) -> None:
        self.path = Path(data_dir) / TRACE_NAME
        self._max_bytes, self._keep = max_bytes, keep_files
        self._seq = 0
        #: the newest entries written, for the firehose (live clients only)
        self.recent: deque[Entry] = deque(maxlen=recent)
        #: called on the loop after each batch is written (the firehose wake-up)
        self.on_written: list[Callable[[], None]] = []
        self._queue: queue.SimpleQueue[tuple[list[Entry], asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: held while files are renamed, so a reader opens a consistent set
        self._rotating = threading.Lock()
        self._fd = -1
        self._size = 0
        self._torn = False

    @property
    def last_seq(self) -> int:
        return self._seq

    # -- life -------------------------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open_file)
        self._thread = threading.Thread(target=self._run, name="jobcast-trace", daemon=True)
        self._thread.start()

    def _open_file(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        if self._size:
            with open(self.path, "rb") as f:
                f.seek(self._size - 1)
                self._torn = f.read(1) != b"\n"
        for path in self._files():
            last = next(_entries_newest_first(path), None)
            if last is not None:
                self._seq = int(last["seq"])
                break

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # -- writing ----------------------------------------------------------------------------

    async def record(
        self,
        op: str,
        *,
        who: str,
        job: str | None = None,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> Entry:
        """Append one entry; returns once it is written (see the module's docstring)."""
        entries = await self.record_many([(op, who, job, outcome, detail)])
        return entries[0]

    async def record_many(
        self, items: list[tuple[str, str, str | None, str, dict[str, Any] | None]]
    ) -> list[Entry]:
        """Append entries `(op, who, job, outcome, detail)` in order, in one write."""
        entries, written = self.submit(items)
        await written
        return entries

    def submit(
        self, items: list[tuple[str, str, str | None, str, dict[str, Any] | None]]
    ) -> tuple[list[Entry], asyncio.Future[None]]:
        """`record_many` in two steps: the entries are in the ledger's order from now (before
        anything recorded later), written once the future is done."""
        if self._loop is None:
            raise RuntimeError("the trace is not open")
        entries = []
        now = time.time()
        for op, who, job, outcome, detail in items:
            if op not in OPS:
                raise ValueError(f"unknown trace op {op!r}")
            self._seq += 1
            data = {
                "seq": self._seq,
                "ts": now,
                "who": who,
                "op": op,
                "job": job,
                "outcome": outcome,
                "detail": detail or {},
            }
            entries.append(Entry(self._seq, data, orjson.dumps(data) + b"\n"))
        fut = self._loop.create_future()
        self._queue.put((entries, fut))
        return entries, fut

    def _run(self) -> None:
        dirty_since: float | None = None
        while True:
            try:
                item = self._queue.get(timeout=_SYNC_EVERY)
            except queue.Empty:
                if dirty_since is not None:  # a quiet second after writes: make them durable
                    self._sync()
                    dirty_since = None
                continue
            batch = [item]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            stop = None in batch
            writes = [w for w in batch if w is not None]
            if writes:
                self._write([e for entries, _ in writes for e in entries])
                dirty_since = dirty_since or time.monotonic()
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._written, writes)
            if stop:
                self._sync()
                os.close(self._fd)
                return
            if dirty_since is not None and time.monotonic() - dirty_since >= _SYNC_EVERY:
                self._sync()
                dirty_since = None

    def _write(self, entries: list[Entry]) -> None:
        data = b"".join(e.line for e in entries)
        if self._torn:
            data = b"\n" + data  # the torn line stays torn (and skipped); ours starts afresh
        try:
            if self._size and self._size + len(data) > self._max_bytes:
                self._rotate()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            self._size += len(data)
            self._torn = False
        except OSError:
            # The operations happened: refusing them now would not undo them. Said loudly instead.
            logger.exception("could not write %d trace entries to %s", len(entries), self.path)
            self._torn = True  # what was written of them may end mid-line

    def _rotate(self) -> None:
        self._sync()
        with self._rotating:
            os.close(self._fd)
            base = str(self.path)
            if self._keep == 0:
                os.unlink(base)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{base}.{self._keep}")
                for n in range(self._keep - 1, 0, -1):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(f"{base}.{n}", f"{base}.{n + 1}")
                os.rename(base, f"{base}.1")
            self._fd = os.open(base, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = 0
        logger.info("rotated the trace ledger %s", self.path)

    def _sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError:
            logger.exception("could not fsync the trace ledger %s", self.path)

    def _written(self, writes: list[tuple[list[Entry], asyncio.Future[None]]]) -> None:
        for entries, fut in writes:
            self.recent.extend(entries)
            if not fut.done():
                fut.set_result(None)
        for wake in self.on_written:
            wake()

    def after(self, seq: int) -> list[Entry]:
        """Written entries past `seq` still in `recent`, oldest first (the firehose's read)."""
        recent = self.recent
        if not recent or recent[-1].seq <= seq:
            return []
        return [e for e in recent if e.seq > seq]

    # -- reading ----------------------------------------------------------------------------

    async def read(
        self,
        *,
        limit: int = 100,
        ops: frozenset[str] = frozenset(),
        job: str | None = None,
        after: int = 0,
    ) -> list[dict[str, Any]]:
        """The newest entries first, at most `limit`, with seq > `after`, of `ops` (all if empty)
        and of `job`; read in a thread, from the current file back through the rotated ones."""
        return await asyncio.to_thread(self._read, limit, ops, job, after)

    def _read(
        self, limit: int, ops: frozenset[str], job: str | None, after: int
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with self._rotating:  # open every file before a rotation can rename one under us
            handles = []
            for path in self._files():
                with contextlib.suppress(FileNotFoundError):
                    handles.append(open(path, "rb"))
        try:
            for f in handles:
                for entry in _entries_newest_first(f):
                    if int(entry["seq"]) <= after:
                        return out
                    if (ops and entry["op"] not in ops) or (job and entry["job"] != job):
                        continue
                    out.append(entry)
                    if len(out) >= limit:
                        return out
        finally:
            for f in handles:
                f.close()
        return out

    def _files(self) -> list[Path]:
        """The ledger's files, newest first."""
        base = str(self.path)
        return [self.path] + [Path(f"{base}.{n}") for n in range(1, self._keep + 1)]


def _entries_newest_first(source: Path | Any) -> Iterator[dict[str, Any]]:
    """The valid entries of a ledger file, last line first; a torn or garbled line is skipped."""
    if isinstance(source, Path):
        try:
            f = open(source, "rb")
        except FileNotFoundError:
            return
        with f:
            yield from _entries_newest_first(f)
        return
    for line in _lines_reversed(source):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("seq"), int) and "op" in entry:
            yield entry


def _lines_reversed(f: Any) -> Iterator[bytes]:
    """The lines of the open binary file `f`, last first, read a block at a time from its end."""
    pos = os.fstat(f.fileno()).st_size
    rest = b""
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        block = f.read(step) + rest
        lines = block.split(b"\n")
        rest = lines[0]
        for line in reversed(lines[1:]):
            if line:
                yield line
    if rest:
        yield rest
