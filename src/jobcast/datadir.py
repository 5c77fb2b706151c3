"""The data dir: created private (0700, files 0600) and held by one server at a time (flock)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["DataDirInUse", "claim"]

LOCK_NAME = "server.lock"
#: the SQLite store's file (store/sqlite.py)
DB_NAME = "jobcast.db"


class DataDirInUse(Exception):
    """Another server holds the data dir; the message names its pid and address."""


def claim(data_dir: Path, address: str) -> int:
    """Create `data_dir` privately and lock it for this process; the lock's fd, kept open.

    Called before anything reads or writes the data dir, so a second server (a second
    `make run`) never recovers, kills or renumbers the first one's jobs. The lock goes with
    the process, however it ends: no stale lock file to clean up.

    Raises:
        DataDirInUse: another live server holds it.
        OSError: the data dir cannot be created (it is a file, say).
    """
    # Job environments and output are stored there: nobody else on the machine may read them.
    # Not by a umask: the jobs would inherit it and make their own files private too.
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    # SQLite gives its -wal and -shm files the mode of the database file: create that one 0600.
    os.close(os.open(data_dir / DB_NAME, os.O_RDWR | os.O_CREAT, 0o600))
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o600)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").split()
        os.close(fd)
        pid, where = (holder + ["?", "?"])[:2]
        raise DataDirInUse(
            f"data dir {str(data_dir)!r} is in use by the server with pid {pid} on {where}; "
            "stop it, or give this one another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {address}\n".encode(), 0)
    return fd
