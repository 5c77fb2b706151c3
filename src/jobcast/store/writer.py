"""The SQLite store's one writer: a thread that owns the write connection and commits in batches.

The event loop submits writes and goes on. The thread takes everything queued, runs it in one
transaction and commits, while the next batch gathers (group commit); then it hands the batch back
to the loop, which only now shows the batch's events to readers and resolves the waiters. So no
statement, commit or checkpoint runs on the loop, and whatever a client is shown is committed.

Checkpoints run in a thread of their own, on a connection of their own: a checkpoint fsyncs, and
on ext4 that fsync waits for the dirty output of every job (100+ ms under a fast writer). WAL mode
lets a PASSIVE checkpoint and commits proceed at once, so commits (and followers) never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Write", "Writer"]

logger = logging.getLogger("jobcast.store")

#: A write's own statements, run in the writer's thread; what it returns goes back to the loop.
Op = Callable[[sqlite3.Connection], Any]

#: the most writes one transaction takes, so the first of them is not kept waiting behind the rest
_BATCH_MAX = 4096


@dataclass(slots=True, eq=False)
class Write:
    """One unit of work: `op` (if any) and `rows` for the bulk statement, all or nothing.

    `done` is the caller's, handed back untouched with the batch (the events to show); `future`, if
    set, gets `result` or `error` once the batch has committed.
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    op: Op | None = None
    done: Any = None
    future: asyncio.Future[Any] | None = None
    result: Any = None
    error: BaseException | None = None
    #: time.monotonic() at `submit`
    submitted: float = 0.0


class Writer:
    """Owns `path`'s write connection in its own thread; `bulk_sql` is run with `executemany`."""

    def __init__(
        self,
        path: Path,
        bulk_sql: str,
        on_commit: Callable[[list[Write]], None],
        *,
        checkpoint_seconds: float = 1.0,
    ) -> None:
        self._path, self._bulk_sql, self._on_commit = path, bulk_sql, on_commit
        self._checkpoint_seconds = checkpoint_seconds
        self._queue: queue.SimpleQueue[Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._db: sqlite3.Connection | None = None
        #: given each batch's append latency in seconds (its first write's submit to its commit),
        #: in the writer's thread: one call per batch, however many events it holds
        self.observe_latency: Callable[[float], None] | None = None

    def connect(self) -> sqlite3.Connection:
        """Open the write connection, for set-up on the caller's thread until `start`."""
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL: a commit survives the process being killed; a power cut may lose the last
        # ones (the WAL is fsynced at checkpoints).
        db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run in their own thread, not inside whichever commit crosses a threshold;
        # a WAL that grew past 64 MiB is cut back when it starts over.
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("PRAGMA journal_size_limit=67108864")
        self._db = db
        return db

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="jobcast-store-writer", daemon=True)
        self._thread.start()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="jobcast-store-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def submit(self, write: Write) -> None:
        write.submitted = time.monotonic()
        self._queue.put(write)

    async def stop(self) -> None:
        """Commit everything submitted so far, checkpoint, close."""
        if self._thread is None or self._checkpointer is None:
            return
        self._stopping.set()
        await asyncio.to_thread(self._checkpointer.join)
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = self._checkpointer = None

    def _run(self) -> None:
        assert self._db is not None and self._loop is not None
        while True:
            batch = [self._queue.get()]
            while len(batch) < _BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            writes = [w for w in batch if w is not None]
            if writes:
                self._commit(writes)
                if self.observe_latency is not None:
                    self.observe_latency(time.monotonic() - writes[0].submitted)
                self._committed.set()
                self._loop.call_soon_threadsafe(self._on_commit, writes)
            if stopping:
                _checkpoint(self._db, "TRUNCATE")
                self._db.close()
                return

    def _checkpoints(self) -> None:
        """Every `checkpoint_seconds` after a commit: copy the WAL into the database."""
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            while not self._stopping.wait(self._checkpoint_seconds):
                if self._committed.is_set():
                    self._committed.clear()
                    if not _checkpoint(db, "PASSIVE"):
                        self._committed.set()  # readers held some frames: again next time
        finally:
            db.close()

    def _commit(self, writes: list[Write]) -> None:
        assert self._db is not None
        db, rows = self._db, []
        try:
            db.execute("BEGIN")
            for w in writes:
                if w.op is None:
                    rows += w.rows
                    continue
                if rows:
                    db.executemany(self._bulk_sql, rows)
                    rows = []
                # A savepoint each: a write refused by its own op (a name taken, say) leaves the
                # rest of the batch to commit.
                db.execute("SAVEPOINT w")
                try:
                    w.result = w.op(db)
                    if w.rows:
                        db.executemany(self._bulk_sql, w.rows)
                except Exception as e:
                    db.execute("ROLLBACK TO w")
                    w.error = e
                db.execute("RELEASE w")
            if rows:
                db.executemany(self._bulk_sql, rows)
            db.execute("COMMIT")
        except Exception as e:
            logger.exception("the store could not commit %d writes", len(writes))
            if db.in_transaction:
                db.execute("ROLLBACK")
            for w in writes:
                w.error = w.error or e


def _checkpoint(db: sqlite3.Connection, mode: str) -> bool:
    """Copy the WAL into the database; False if frames are left for next time."""
    try:
        busy, frames, done = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    except sqlite3.Error:
        logger.exception("WAL checkpoint (%s) failed", mode)
        return False
    return not busy and done >= frames
