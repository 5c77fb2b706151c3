"""The tailer: follows the files `--watch` matches into the event log, as jobs of kind `source`.

One source per file, found again by its path after a restart: its stream's length is where the
file is read from (stream offset = `base` + file offset, see `SourceInfo`), so a restart repeats
nothing and skips nothing. Each read (at most `BATCH_BYTES`) becomes one `stdout` event, as the
runner's reads of a pipe do. A file that shrinks (truncated) or whose path leads to another inode
(rotated) gets an `error` event saying so (code `source_truncated` / `source_rotated`), and the
new content is followed from its start, at the stream's end: never read as more of the old one.

`watchfiles` says when a watched directory changes (new files, writes); a scan each second
catches what it could not see (a symlink's target in another directory, a directory created
later). Files are opened only when they resolve under `watch_roots`, checked again on the
descriptor actually opened (a symlink swapped in between is caught).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings, SourceConfig
from ..errors import NameTaken, SourceReadOnly
from ..models import EventType, Job, JobSpec, JobStatus, SourceInfo
from ..store.base import BATCH_BYTES, Store
from . import control
from .paths import Pattern, matches, outside_roots, parse_patterns, resolve_roots, source_name
from .timing import Timing, read_timing, timing_path

__all__ = ["POLL_SECONDS", "Sources"]

logger = logging.getLogger("jobcast.sources")
# watchfiles says "N changes detected" at info for every write of every file: not news here.
logging.getLogger("watchfiles.main").setLevel(logging.WARNING)

#: how often every file is checked (and the patterns rescanned) without a change notice
POLL_SECONDS = 1.0
#: how long a source's task may take to finish its read at shutdown
STOP_GRACE = 2.0
NO_LONGER_WATCHED = "no longer watched: no --watch pattern matches its file"
FILE_GONE = "its file is gone"


class Refused(Exception):
    """A file that matched but may not be tailed; the message says why."""


@dataclass(eq=False)
class _File:
    path: str
    job_id: str
    fd: int
    dev: int
    inode: int
    #: stream offset of the file's first byte, and the file offset read up to
    base: int
    pos: int
    timing: Timing | None = None
    #: the file's size when following began: bytes before it are timed by `timing`
    backlog_end: int = 0
    #: when the file was last written before following began (its mtime then)
    backlog_time: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def info(self) -> SourceInfo:
        timing = timing_path(self.path)
        return SourceInfo(
            path=self.path,
            inode=self.inode,
            base=self.base,
            timing=timing if os.path.exists(timing) else None,
        )


class Sources:
    """The files of `settings.watch`, tailed while the server runs."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._patterns: list[Pattern] = parse_patterns(settings.watch)
        self._roots = resolve_roots(settings.watch_roots, self._patterns) if settings.watch else []
        self._configs: dict[str, SourceConfig] = {
            os.path.abspath(os.path.expanduser(c.path)): c for c in settings.sources
        }
        self._window = settings.batch_window_ms / 1000
        self._files: dict[str, _File] = {}
        #: paths refused, with the reason last logged (said again only when it changes)
        self._refused: dict[str, str] = {}
        self._adding: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._stop_watching = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Finish the sources no pattern matches any more, then follow every matching file."""
        await self._retire()
        if not self._patterns:
            return
        for path in await asyncio.to_thread(self._scan):
            await self._add(path)
        self._spawn(self._watch(), "jobcast-sources-watch")
        self._spawn(self._rescan(), "jobcast-sources-scan")

    async def stop(self) -> None:
        """Stop reading; sources stay `running` in the store, for the next server to resume."""
        self._stopping = True
        self._stop_watching.set()
        for f in self._files.values():
            f.changed.set()
        followers = [f.task for f in self._files.values() if f.task is not None]
        if followers or self._tasks:
            await asyncio.wait([*followers, *self._tasks], timeout=STOP_GRACE)
        for task in [*followers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*followers, *self._tasks, return_exceptions=True)
        for f in self._files.values():
            os.close(f.fd)
        self._files.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _retire(self) -> None:
        """Sources left running by a previous server whose file is no longer watched (or gone)
        end `cancelled`, saying why; the others are resumed by `_add`."""
        for job, _ in await self._store.unfinished_jobs():
            if job.kind != "source" or job.source is None:
                continue
            path = job.source.path
            reason = None
            if not matches(path, self._patterns):
                reason = NO_LONGER_WATCHED
            elif not _lexists(path):
                reason = FILE_GONE
            if reason is not None:
                logger.info("source %s (%s): %s; finishing it", job.id, path, reason)
                await self._store.set_status(
                    job.id, JobStatus.CANCELLED, finished_at=time.time(), reason=reason
                )

    # -- finding files --------------------------------------------------------------------------

    def _scan(self) -> list[str]:
        found: set[str] = set()
        for p in self._patterns:
            pattern = os.path.join(glob.escape(p.dir), *p.parts)
            found.update(os.path.abspath(m) for m in glob.glob(pattern))
        return sorted(m for m in found if matches(m, self._patterns))

    async def _watch(self) -> None:
        """Change notices from the watched directories: new files are added, known ones woken."""
        from watchfiles import awatch

        dirs = sorted({p.dir for p in self._patterns})
        recursive = any(p.recursive for p in self._patterns)
        while not self._stopping:
            present = _dirs(dirs)
            if not present:
                await asyncio.sleep(POLL_SECONDS)
                continue
            try:
                # A notice ~5 ms after a write (`step`), not watchfiles' 50 ms and 1.6 s: less
                # than the runner's batch window. watchfiles wakes every `step` even when idle:
                # step=1 cut the lag p50 of sparse writes from 7.7 to 2.2 ms but cost 2.3% of a
                # core idle, against 0.8% at 5 (bench/RESULTS.md).
                async for changes in awatch(
                    *present,
                    watch_filter=None,
                    debounce=20,
                    step=5,
                    recursive=recursive,
                    ignore_permission_denied=True,
                    stop_event=self._stop_watching,
                ):
                    for _, path in changes:
                        self._notice(path)
                    if len(_dirs(dirs)) > len(present):
                        break  # a watched directory appeared: watch it too
            except FileNotFoundError:
                pass  # a watched directory went away: watch what is left
            except Exception:
                logger.exception("watching %s failed; relying on the scan each second", dirs)
                await asyncio.sleep(POLL_SECONDS * 5)

    def _notice(self, path: str) -> None:
        path = os.path.abspath(path)
        f = self._files.get(path)
        if f is not None:
            f.changed.set()
        elif matches(path, self._patterns) and path not in self._adding:
            self._spawn(self._add(path), "jobcast-sources-add")

    async def _rescan(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_watching.wait(), POLL_SECONDS)
            if self._stopping:
                return
            for path in await asyncio.to_thread(self._scan):
                if path not in self._files and path not in self._adding:
                    await self._add(path)

    # -- adding a source ------------------------------------------------------------------------

    def _open(self, path: str) -> tuple[int, os.stat_result]:
        """Open `path` for reading if it is a regular file under the roots.

        Raises:
            Refused: it resolves out of the roots, or is no regular file. OSError: it cannot be
                opened (gone, no permission).
        """
        real = os.path.realpath(path)
        if outside_roots(real, self._roots):
            raise Refused(f"it resolves to {real}, outside watch_roots ({', '.join(self._roots)})")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Refused("it is not a regular file")
            # What was opened, wherever the path led by then (a symlink swapped after the check).
            opened = os.readlink(f"/proc/self/fd/{fd}")
            if outside_roots(opened, self._roots):
                raise Refused(f"it opened {opened}, outside watch_roots")
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _refuse(self, path: str, why: str) -> None:
        if self._refused.get(path) != why:
            self._refused[path] = why
            logger.warning("refusing to tail %s: %s", path, why)

    async def _add(self, path: str) -> None:
        if path in self._files or path in self._adding or self._stopping:
            return
        self._adding.add(path)
        try:
            try:
                fd, st = self._open(path)
            except Refused as e:
                self._refuse(path, str(e))
                return
            except FileNotFoundError:
                return  # gone again (or a dangling symlink): the scan looks again
            except OSError as e:
                self._refuse(path, f"cannot open it: {e.strerror or e}")
                return
            self._refused.pop(path, None)
            try:
                f = await self._attach(path, fd, st)
            except BaseException:
                os.close(fd)
                raise
            self._files[path] = f
            f.task = asyncio.create_task(self._follow(f), name=f"jobcast-source-{f.job_id}")
        except Exception:
            logger.exception("cannot follow %s", path)
        finally:
            self._adding.discard(path)

    async def _attach(self, path: str, fd: int, st: os.stat_result) -> _File:
        """The source's job (found by path, else made), and where in the file to go on."""
        job = await self._store.find_source(path)
        if job is None or job.status.is_final:
            job = await self._create(path, st)
            f = _File(path, job.id, fd, st.st_dev, st.st_ino, 0, 0)
            logger.info("source %s: tailing %s as %s", job.id, path, job.name or "(no name)")
        else:
            if job.status is JobStatus.QUEUED:  # a server that died while making it
                await self._store.set_status(job.id, JobStatus.RUNNING, started_at=time.time())
            length = await self._store.output_size(job.id, "stdout")
            info = job.source or SourceInfo(path=path)
            f = _File(path, job.id, fd, st.st_dev, st.st_ino, info.base, length - info.base)
            if info.inode is not None and info.inode != st.st_ino:
                await self._restart(f, "rotated", "was replaced while the server was down")
            elif st.st_size < f.pos or f.pos < 0:
                await self._restart(f, "truncated", "shrank while the server was down")
            elif f.info() != info:  # a `.timing` file that came after the typescript, say
                await self._store.set_source(job.id, f.info())
            logger.info("source %s: resuming %s at byte %d", job.id, path, f.pos)
        f.backlog_end, f.backlog_time = st.st_size, st.st_mtime
        if f.pos < st.st_size:
            f.timing = await asyncio.to_thread(self._timing, f)
        return f

    async def _create(self, path: str, st: os.stat_result) -> Job:
        name = source_name(path)
        info = SourceInfo(path=path, inode=st.st_ino)
        # Another active job (or a file of the same name elsewhere) may hold the name.
        candidates = [name, *(f"{name[:61]}-{n}" for n in range(2, 10))] if name else []
        for candidate in [*candidates, None]:
            try:
                spec = JobSpec(argv=[path], name=candidate, pty=True)
                job = await self._store.create_job(spec, source=info)
                break
            except NameTaken:
                continue
        await self._store.set_status(job.id, JobStatus.RUNNING, started_at=time.time())
        timing = timing_path(path)
        if _lexists(timing):
            await self._store.set_source(job.id, info.model_copy(update={"timing": timing}))
        return await self._store.get_job(job.id)

    def _timing(self, f: _File) -> Timing | None:
        path = timing_path(f.path)
        if not os.path.exists(path) or outside_roots(os.path.realpath(path), self._roots):
            return None
        head = os.pread(f.fd, 4096, 0)
        return read_timing(path, head)

    # -- following ------------------------------------------------------------------------------

    async def _follow(self, f: _File) -> None:
        try:
            while not self._stopping:
                f.changed.clear()
                await self._check(f)
                await self._drain(f)
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(f.changed.wait(), POLL_SECONDS)
        except Exception as e:
            # Forgotten, so the next scan (within a second) attaches it again: from the stream's
            # length, as after a restart, so nothing is repeated or skipped.
            logger.exception("source %s: following %s failed; trying again", f.job_id, f.path)
            self._files.pop(f.path, None)
            os.close(f.fd)
            with contextlib.suppress(Exception):
                error = {"message": f"following {f.path} failed ({e}); trying again"}
                await self._store.append(f.job_id, EventType.ERROR, {**error, "code": "source"})

    async def _check(self, f: _File) -> None:
        """Rotation (the path leads to another file) and truncation (the file shrank)."""
        try:
            st = os.stat(f.path)
        except OSError:
            st = None  # removed (or moved away): the old file is read to its end meanwhile
        if st is not None and (st.st_dev, st.st_ino) != (f.dev, f.inode):
            await self._drain(f)  # what the writer put in the old file before it moved
            try:
                fd, st = self._open(f.path)
            except Refused as e:
                self._refuse(f.path, f"its new file: {e}")
                return
            except OSError:
                return
            os.close(f.fd)
            f.fd, f.dev, f.inode = fd, st.st_dev, st.st_ino
            await self._restart(f, "rotated", "was replaced by a new file (rotated)")
            return
        size = os.fstat(f.fd).st_size
        if size < f.pos:
            await self._restart(f, "truncated", f"shrank from {f.pos} to {size} bytes (truncated)")

    async def _restart(self, f: _File, reason: str, what: str) -> None:
        """Follow the file from its start, at the stream's end, and say so in the log."""
        offset = f.base + f.pos
        previous = f.pos
        f.base, f.pos, f.timing, f.backlog_end = offset, 0, None, 0
        notice = {
            "message": f"{f.path} {what}; following its new content from its start, at stream "
            f"offset {offset}",
            "code": f"source_{reason}",
            "reason": reason,
            "path": f.path,
            "offset": offset,
            "file_offset": 0,
            "previous_size": previous,
        }
        logger.warning("source %s: %s", f.job_id, notice["message"])
        await self._store.set_source(f.job_id, f.info(), notice)

    async def _drain(self, f: _File) -> None:
        """Read the file to its end, a batch of at most BATCH_BYTES per event.

        Each read follows the previous batch's commit, so a file written fast is read in
        batches as large as what came meanwhile. No batch window as the runner's for a pipe:
        measured (bench/sources.py, 50 MB/s), a 10 ms pause after each short read saved ~15%
        of the server's CPU but raised the followers' lag p99 from ~5 ms to 50-600 ms.
        """
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.run_in_executor(None, os.pread, f.fd, BATCH_BYTES, f.pos)
            if not data:
                return
            if f.timing is not None and f.pos < f.backlog_end:
                await self._timed(f, data, f.timing)
                continue
            await self._store.append(f.job_id, EventType.STDOUT, raw=data)
            f.pos += len(data)

    async def _timed(self, f: _File, data: bytes, timing: Timing) -> None:
        """Bytes that were in the file before it was followed, stamped with the times its
        `.timing` file gives: a replay of the recording keeps its pauses."""
        start = f.pos
        end = min(start + len(data), f.backlog_end)
        cuts = timing.cuts(start, end, self._window, BATCH_BYTES)
        if not cuts:
            # One chunk larger than a read, or bytes the timing does not cover (the footer,
            # or bytes written otherwise): those were all there when the file was last changed.
            cuts = [(end, timing.time_at(end) or f.backlog_time)]
        for cut, ts in cuts:
            chunk = data[f.pos - start : cut - start]
            await self._store.append(f.job_id, EventType.STDOUT, raw=chunk, ts=ts)
            f.pos = cut

    # -- input ----------------------------------------------------------------------------------

    def config_for(self, job: Job) -> SourceConfig:
        """The session input to source `job` goes to.

        Raises:
            SourceReadOnly: no `[[sources]]` table names a session for its file.
        """
        path = job.source.path if job.source is not None else ""
        config = self._configs.get(path)
        if config is None:
            raise SourceReadOnly(
                f"job {job.id} is a source ({path}): it is read-only; to type into its session, "
                'name it in the server\'s config ([[sources]] path = ..., tmux = "SESSION")'
            )
        return config

    async def write(self, job: Job, data: bytes) -> int:
        """Type `data` into the source's session. Raises SourceReadOnly or Conflict."""
        return await control.send(self.config_for(job), data)

    async def interrupt(self, job: Job) -> None:
        """Ctrl-C into the source's session. Raises SourceReadOnly or Conflict."""
        await control.interrupt(self.config_for(job))


def _lexists(path: str) -> bool:
    return os.path.lexists(path)


def _dirs(dirs: list[str]) -> list[str]:
    """Those of `dirs` that exist now."""
    return [d for d in dirs if os.path.isdir(d)]
