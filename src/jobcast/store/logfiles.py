"""Append-only output files, one per job and stream, read back by byte range."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

__all__ = ["OutputFiles"]

_READERS_KEPT = 64


class OutputFiles:
    """`<root>/<job>.stdout` and `<root>/<job>.stderr`; the bytes exactly as the process wrote them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writers: dict[tuple[str, str], int] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        self._readers: OrderedDict[tuple[str, str], int] = OrderedDict()

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
        fd = self._reader(job_id, stream)
        if fd is None or length <= 0:
            return b""
        return os.pread(fd, length, offset)

    def _reader(self, job_id: str, stream: str) -> int | None:
        key = (job_id, stream)
        fd = self._readers.get(key)
        if fd is not None:
            self._readers.move_to_end(key)
            return fd
        try:
            fd = os.open(self.path(job_id, stream), os.O_RDONLY)
        except FileNotFoundError:
            return None
        self._readers[key] = fd
        if len(self._readers) > _READERS_KEPT:
            os.close(self._readers.popitem(last=False)[1])
        return fd

    def finish(self, job_id: str) -> None:
        """The job will write no more: release its writers."""
        for stream in ("stdout", "stderr"):
            fd = self._writers.pop((job_id, stream), None)
            self._sizes.pop((job_id, stream), None)
            if fd is not None:
                os.close(fd)

    def delete(self, job_id: str) -> None:
        self.finish(job_id)
        for stream in ("stdout", "stderr"):
            fd = self._readers.pop((job_id, stream), None)
            if fd is not None:
                os.close(fd)
            self.path(job_id, stream).unlink(missing_ok=True)

    def close(self) -> None:
        for fd in [*self._writers.values(), *self._readers.values()]:
            os.close(fd)
        self._writers.clear()
        self._sizes.clear()
        self._readers.clear()
