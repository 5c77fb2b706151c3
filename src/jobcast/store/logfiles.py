"""Append-only output files, one per job and stream, read back by byte range."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["OFF_LOOP_BYTES", "OutputFiles", "Span"]

#: (job id, stream, offset, length): a byte range of one output file
Span = tuple[str, str, int, int]

#: Writes of at least this many bytes go to the files' own thread. A write to the page cache is
#: cheap until the kernel throttles dirty pages or reclaims memory for them: then one 1 MiB write
#: held the event loop (and every follower) for milliseconds. Small writes stay on the loop,
#: where a thread's hand-off would cost more than the write (and a live line's latency).
OFF_LOOP_BYTES = 64 << 10


class OutputFiles:
    """`<root>/<job>.stdout` and `<root>/<job>.stderr`; the bytes exactly as the process wrote them.

    Small writes happen on the event loop, large ones (`append_large`) in one thread of the
    files' own, in the order they were asked for; the sizes (so the offsets) are the loop's.
    Reads, `sync` and `unlink` are made for a worker thread: they share no state with the writes
    but the files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writers: dict[tuple[str, str], int] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        #: one thread: the large writes of a file land in the order they were asked for
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="jobcast-store-files")
        #: files with a write in that thread: what comes next for them goes there too, behind it
        self._busy: dict[tuple[str, str], int] = {}
        #: jobs written to since `take_unsynced` last ran, and how many bytes
        self._unsynced: set[str] = set()
        self.unsynced_bytes = 0

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str, stream: str) -> Path:
        return self.root / f"{job_id}.{stream}"

    def append(self, job_id: str, stream: str, data: bytes) -> int:
        """Write `data` at the end, on the loop; return the offset it starts at."""
        key = (job_id, stream)
        assert key not in self._busy, "a large write of this file is under way: append_large"
        fd, offset = self._reserve(key, len(data))
        try:
            _write_all(fd, data, offset)
        except OSError:
            self._sizes[key] = offset
            raise
        return offset

    def is_large(self, job_id: str, stream: str, n: int) -> bool:
        """Whether a write of `n` bytes must go through `append_large`."""
        return n >= OFF_LOOP_BYTES or (job_id, stream) in self._busy

    async def append_large(self, job_id: str, stream: str, data: bytes) -> int:
        """`append`, the write done in the files' thread (behind any other of this file's)."""
        key = (job_id, stream)
        fd, offset = self._reserve(key, len(data))
        # Its own descriptor, closed by the thread: `finish` or `close` may close the loop's.
        own = os.dup(fd)
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._thread, _write_own, own, data, offset
            )
        except OSError:
            # Cut back to `offset` by the thread; only the writes behind it are lost with it.
            if key in self._sizes:
                self._sizes[key] = offset
            raise
        finally:
            left = self._busy.pop(key) - 1
            if left:
                self._busy[key] = left
        return offset

    def _reserve(self, key: tuple[str, str], n: int) -> tuple[int, int]:
        fd = self._writers.get(key)
        if fd is None:
            fd = os.open(self.path(*key), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._writers[key] = fd
            self._sizes[key] = os.fstat(fd).st_size
        offset = self._sizes[key]
        self._sizes[key] = offset + n
        self._unsynced.add(key[0])
        self.unsynced_bytes += n
        return fd, offset

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
        """After the last write: the thread's pending writes finish first."""
        self._thread.shutdown(wait=True)
        for fd in self._writers.values():
            os.close(fd)
        self._writers.clear()
        self._sizes.clear()


def _write_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at the end of `fd`'s file, which is `offset` long; on a failure (a
    full disk) cut off what was written, so the file stays as long as what was recorded."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        if len(view) < len(data):
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
        raise


def _write_own(fd: int, data: bytes, offset: int) -> None:
    try:
        _write_all(fd, data, offset)
    finally:
        os.close(fd)
