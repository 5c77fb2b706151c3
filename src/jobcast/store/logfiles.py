"""Append-only output files, one per job and stream, read back by byte range."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["OutputFiles", "Span"]

#: (job id, stream, offset, length): a byte range of one output file
Span = tuple[str, str, int, int]


class OutputFiles:
    """`<root>/<job>.stdout` and `<root>/<job>.stderr`; the bytes exactly as the process wrote them.

    Writes happen on the event loop (a `write` to the page cache is cheap); reads, `sync` and
    `unlink` are made for a worker thread: they share no state with the writes but the files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writers: dict[tuple[str, str], int] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        #: jobs written to since `take_unsynced` last ran, and how many bytes
        self._unsynced: set[str] = set()
        self.unsynced_bytes = 0

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str, stream: str) -> Path:
        return self.root / f"{job_id}.{stream}"

    def append(self, job_id: str, stream: str, data: bytes) -> int:
        """Write `data` at the end; return the offset it starts at."""
        key = (job_id, stream)
        fd = self._writers.get(key)
        if fd is None:
            fd = os.open(self.path(job_id, stream), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._writers[key] = fd
            self._sizes[key] = os.fstat(fd).st_size
        offset = self._sizes[key]
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        self._sizes[key] = offset + len(data)
        self._unsynced.add(job_id)
        self.unsynced_bytes += len(data)
        return offset

    def size(self, job_id: str, stream: str) -> int:
        key = (job_id, stream)
        if key in self._sizes:
            return self._sizes[key]
        try:
            return self.path(job_id, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, job_id: str, stream: str, offset: int, length: int) -> bytes:
        return self.read_spans([(job_id, stream, offset, length)])[0]

    def read_spans(self, spans: Iterable[Span]) -> list[bytes]:
        """The bytes of each span (b"" where the file is gone), opening each file once."""
        fds: dict[tuple[str, str], int | None] = {}
        out: list[bytes] = []
        try:
            for job_id, stream, offset, length in spans:
                key = (job_id, stream)
                if key not in fds:
                    try:
                        fds[key] = os.open(self.path(job_id, stream), os.O_RDONLY)
                    except FileNotFoundError:
                        fds[key] = None
                fd = fds[key]
                out.append(os.pread(fd, length, offset) if fd is not None and length > 0 else b"")
        finally:
            for fd in fds.values():
                if fd is not None:
                    os.close(fd)
        return out

    def take_unsynced(self) -> set[str]:
        """The jobs written to since the last call, for `sync`."""
        jobs, self._unsynced = self._unsynced, set()
        self.unsynced_bytes = 0
        return jobs

    def sync(self, job_ids: Iterable[str]) -> None:
        """fsync the jobs' files: through a descriptor of our own, as the loop may close its own."""
        for job_id in job_ids:
            for stream in ("stdout", "stderr"):
                with contextlib.suppress(FileNotFoundError):
                    fd = os.open(self.path(job_id, stream), os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)

    def finish(self, job_id: str) -> None:
        """The job will write no more: release its writers."""
        for stream in ("stdout", "stderr"):
            fd = self._writers.pop((job_id, stream), None)
            self._sizes.pop((job_id, stream), None)
            if fd is not None:
                os.close(fd)

    def unlink(self, job_id: str) -> None:
        """Remove the job's files (after `finish`); unlinking a big file takes a while."""
        for stream in ("stdout", "stderr"):
            self.path(job_id, stream).unlink(missing_ok=True)

    def close(self) -> None:
        for fd in self._writers.values():
            os.close(fd)
        self._writers.clear()
        self._sizes.clear()
