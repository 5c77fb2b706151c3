"""Giving deleted jobs' space back to the disk: SQLite's incremental vacuum, on from the start,
run a chunk per write by the store's writer thread.

Deleting rows leaves free pages inside the database file: SQLite reuses them for new rows, but
the file never shrinks by itself. With `auto_vacuum=INCREMENTAL` a write can move free pages to
the end and cut the file there; the next checkpoint shortens the file on disk.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

__all__ = ["CHUNK_PAGES", "CONVERT_MAX_BYTES", "enable_incremental", "free_bytes", "step"]

logger = logging.getLogger("jobcast.store")

#: a database that predates incremental vacuum is converted at open (one VACUUM, which rewrites
#: the whole file: about a second at this size) when it is no bigger than this
CONVERT_MAX_BYTES = 64 * 1024 * 1024
#: pages given back per write: 1 MiB of 4 KiB pages, a few ms of the writer's time (23 µs a page
#: measured here), so commits of running jobs never wait behind a long vacuum
CHUNK_PAGES = 256

_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def enable_incremental(db: sqlite3.Connection, path: Path) -> bool:
    """Switch incremental vacuum on (before the writer starts); False if the file is left as it is.

    The mode can only change with a VACUUM (or before the first table exists): a new or small
    database gets it now, a big one keeps reusing its free pages and is told how to convert.
    """
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == _INCREMENTAL:
        return True
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    size = pages * db.execute("PRAGMA page_size").fetchone()[0]
    if size > CONVERT_MAX_BYTES:
        logger.warning(
            "the database %s (%d MiB) predates incremental vacuum: the space of deleted jobs is "
            "reused, but the file will not shrink; to convert it, stop the server and run "
            "`sqlite3 %s 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM'`",
            path,
            size >> 20,
            path,
        )
        return False
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    db.execute("VACUUM")  # outside any transaction, which VACUUM needs
    return True


def step(db: sqlite3.Connection) -> bool:
    """A writer op: give back up to `CHUNK_PAGES` free pages; True while some are left."""
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    # Python's sqlite3 steps a statement once, and each step of incremental_vacuum frees one
    # page, whatever N says: one execute per page.
    for _ in range(min(free, CHUNK_PAGES)):
        db.execute("PRAGMA incremental_vacuum(1)")
    return free > CHUNK_PAGES


def free_bytes(db: sqlite3.Connection) -> int:
    """The database's free pages, in bytes."""
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int(free * db.execute("PRAGMA page_size").fetchone()[0])
