"""The supervisor: FIFO queue, max running, timeouts, cancel, recovery; the only status writer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import Settings
from ..errors import (
    BadRequest,
    Conflict,
    JobFinished,
    NoStdin,
    ServerShuttingDown,
    SourceReadOnly,
)
from ..models import RECORDED_INPUT, EventType, Job, JobSpec, JobStatus
from ..pastes import CONTEXT_ENV, Pastes
from ..store.base import ProcessInfo, Store
from .backend import Backend, Process, SpawnError, SpawnRequest
from .group import end_group, group_is_ours
from .limits import Outcome, OutputCap, batch_window, outcome, parse_signal, shell_failure
from .matcher import Matcher, combine
from .process import spawn_pipes
from .pty import PTY_TERM, spawn_pty
from .reaper import JOB_ID_ENV

__all__ = ["LocalBackend", "SourceInput", "Supervisor"]

logger = logging.getLogger("jobcast.runner")

LOST_RUNNING = "the server stopped while the job ran"
LOST_QUEUED = "the server stopped before the job started; run it again"
#: How much of the output a shell's complaint is looked for in, at the end
SHELL_TAIL = 1024


#: "cannot be ..." for the actions `_lookup` is asked for
_PAST = {
    "cancel": "cancelled",
    "signal": "signalled",
    "resize": "resized",
    "write to": "written to",
}


class SourceInput(Protocol):
    """Where input to a source goes (`sources.Sources`): its tmux or screen session."""

    async def write(self, job: Job, data: bytes) -> int: ...

    async def interrupt(self, job: Job) -> None: ...


class LocalBackend:
    """Processes as children of this server: the one place that picks pipes or a PTY."""

    async def spawn(self, request: SpawnRequest) -> Process:
        return spawn_pty(request) if request.pty else spawn_pipes(request)


class _Output:
    """A job's output sink: applies the output cap, then appends to the store.

    A failed append drops that output, never silently: it is counted in the job's dropped bytes,
    logged, and recorded as a `store_failed` error event (if the store takes that), once per run
    of failures. The job goes on, and so does recording once the store takes writes again.
    """

    def __init__(self, store: Store, job_id: str, limit: int, tail: EventType) -> None:
        self._store, self._job_id = store, job_id
        self.cap = OutputCap(limit)
        #: the end of the stream that carries stderr, where a shell says what it could not run
        self.tail, self._tail_stream = b"", tail
        self._lost = 0
        self._failing = False

    @property
    def dropped(self) -> int:
        """Bytes not recorded: past the output cap, or refused by the store."""
        return self.cap.dropped + self._lost

    async def __call__(self, stream: EventType, data: bytes) -> None:
        if stream is self._tail_stream:
            self.tail = (self.tail + data[-SHELL_TAIL:])[-SHELL_TAIL:]
        keep, crossed = self.cap.take(len(data))
        if keep:
            await self._append(stream, raw=data if keep == len(data) else data[:keep])
        if crossed:
            notice = {"message": self.cap.notice(), "code": "output_limit"}
            await self._append(EventType.ERROR, notice)

    async def _append(
        self, type: EventType, data: dict[str, Any] | None = None, raw: bytes | None = None
    ) -> None:
        try:
            await self._store.append(self._job_id, type, data, raw=raw)
        except Exception as e:
            await self._failed(type, len(raw or b""), e)
        else:
            self._failing = False

    async def _failed(self, type: EventType, n: int, exc: Exception) -> None:
        self._lost += n
        if self._failing:
            return
        self._failing = True
        what = f"{n} bytes of {type}" if n else f"an {type} event"
        logger.error("job %s: the store failed to record %s: %r", self._job_id, what, exc)
        message = f"the store failed to record {what} ({exc}); it was dropped, the job goes on"
        try:
            error = {"message": message, "code": "store_failed"}
            await self._store.append(self._job_id, EventType.ERROR, error)
        except Exception as e:
            logger.error("job %s: the store failed to record that too: %r", self._job_id, e)


@dataclass(eq=False)
class _Run:
    job: Job
    spec: JobSpec
    proc: Process | None = None
    #: the process's `run()`: pumping, reaping, draining
    task: asyncio.Task[int] | None = None
    killer: asyncio.Task[None] | None = None
    #: the final status the runner chose when it ended the process itself
    ended_by: JobStatus | None = None
    reason: str | None = None
    #: set once the end is being recorded: from then on, nothing else may append for the job
    ending: bool = False
    holds: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Keep the `complete` event from being appended before an input/resize event in flight."""
        if self.ending:
            raise JobFinished(f"job {self.job.id} has just finished")
        self.holds += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.holds -= 1
            if not self.holds:
                self.idle.set()


class Supervisor:
    """Runs jobs: at most `settings.max_running_jobs` at once, the rest FIFO.

    Status changes go through here only; each job's log ends with one `complete` event.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        followers: Callable[[str], int] | None = None,
        backend: Backend | None = None,
        on_extraction: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._followers = followers
        #: told of each batch of extraction events a job's matcher appended (metrics)
        self._on_extraction = on_extraction
        self._backend: Backend = backend or LocalBackend()
        self._waiting: dict[str, _Run] = {}
        self._runs: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self._closing = False
        #: the tailed files (`sources.Sources`), where input to a source goes; None: no sources
        self.sources: SourceInput | None = None
        #: jobs running at once; the policy may change it while the server runs
        self.max_running = settings.max_running_jobs

    def set_max_running(self, n: int) -> None:
        """Run up to `n` jobs at once from now on (those running past it are not stopped)."""
        self.max_running = n
        self._start_waiting()

    def running(self) -> int:
        return len(self._runs)

    def queued(self) -> int:
        return len(self._waiting)

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """End what a previous server left running (recorded `lost`), then run the queued jobs,
        those a previous server left queued first."""
        known = self._runs.keys() | self._waiting.keys()
        # Sources run no process: the tailer (`sources`) resumes or finishes them.
        unfinished = [
            (job, info)
            for job, info in await self._store.unfinished_jobs()
            if job.id not in known and job.kind == "job"
        ]
        # Queued jobs had not started: they run now, ahead of any submitted meanwhile, in order.
        requeued: dict[str, _Run] = {}
        for job, _ in unfinished:
            if job.status is JobStatus.QUEUED:
                try:
                    requeued[job.id] = _Run(job, await self._store.job_spec(job.id))
                except Exception:
                    logger.exception("job %s: could not read it back to run it", job.id)
        self._waiting = {**requeued, **self._waiting}
        left = [(job, info) for job, info in unfinished if job.id not in requeued]
        results = await asyncio.gather(
            *(self._recover(job, info) for job, info in left), return_exceptions=True
        )
        for (job, _), result in zip(left, results, strict=True):
            if isinstance(result, Exception):
                logger.error("job %s: could not record it lost: %s", job.id, result)
        self._started = True
        self._start_waiting()

    async def _recover(self, job: Job, info: ProcessInfo | None) -> None:
        reason = LOST_QUEUED
        if job.status is JobStatus.RUNNING:
            reason = LOST_RUNNING
            # Matched by group and start time, never by pid alone (see group_is_ours).
            if info is not None and group_is_ours(info):
                logger.warning(
                    "job %s: ending process group %d left by a previous server", job.id, info[1]
                )
                await end_group(info[1], self._settings.kill_grace_seconds)
        await self._store.append(job.id, EventType.ERROR, {"message": reason, "code": "lost"})
        await self._record_end(
            job.id, Outcome(JobStatus.LOST, None, None, reason), job.dropped_bytes
        )

    async def shutdown(self, reason: str = "server shutting down") -> None:
        """End every job `cancelled`; return once all are reaped and recorded."""
        self._closing = True
        while self._waiting:
            await self._cancel_waiting(next(iter(self._waiting.values())), reason)
        for run in list(self._runs.values()):
            self._end(run, JobStatus.CANCELLED, reason)
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- requests -------------------------------------------------------------------------------

    async def submit(self, job: Job, spec: JobSpec) -> None:
        """Run `job` (just created `queued`) now if a slot is free, else when one frees up (FIFO).

        Returns at once. Before `start()` the job only waits; `start()` runs it after recovery.

        Raises:
            ServerShuttingDown: the server is shutting down; the job is recorded cancelled.
        """
        run = _Run(job, spec)
        self._waiting[job.id] = run
        if self._closing:
            await self._cancel_waiting(run, "server shutting down")
            raise ServerShuttingDown(f"the server is shutting down; job {job.id} was not started")
        self._start_waiting()

    async def cancel(
        self, job_id: str, reason: str = "cancelled by request", *, wait: bool = True
    ) -> None:
        """Cancel a queued job at once, or end a running one (SIGTERM, SIGKILL after the grace).

        Idempotent while the job ends. With `wait`, returns once its end is recorded.

        Raises:
            JobNotFound: no such job.
            JobFinished: the job had already finished.
        """
        run = await self._lookup(job_id, "cancel")
        if run.job.id in self._waiting:
            await self._cancel_waiting(run, reason)
            return
        self._end(run, JobStatus.CANCELLED, reason)
        if wait:
            await run.done.wait()

    async def signal(self, job_id: str, sig: str | int) -> str:
        """Send a signal ("INT", "SIGINT", "int" or a number) to the job's whole process group.

        Returns:
            The signal's canonical name, such as "SIGINT".

        Raises:
            BadRequest: not a signal. JobFinished: the job has ended. Conflict: it is still queued.
        """
        number, name = parse_signal(sig)
        run = await self._lookup(job_id, "signal")
        proc = self._started_process(run, f"send it {name}")
        proc.signal(number)
        logger.info("job %s: sent %s", run.job.id, name)
        return name

    async def write_input(self, job_id: str, data: bytes, eof: bool = False) -> int:
        """Write `data` to the job's stdin or terminal without blocking; `eof` ends the input.

        Returns:
            The number of bytes accepted. An `input` event records the length, and the content
            only for a job started with `record_input` (protocol.event_dict never sends it).

        Raises:
            NoStdin: the job has neither stdin nor a terminal. JobFinished: it has ended.
            Conflict: it is queued, or has not read what it was sent before.
        """
        source = await self._source(job_id)
        if source is not None:
            if eof:
                raise BadRequest(
                    f"job {source.id} is a source: its session has no stdin to close (no eof)"
                )
            return await self._write_source(source, data)
        run = await self._lookup(job_id, "write to")
        if not (run.spec.stdin or run.spec.pty):
            raise NoStdin(
                f"job {run.job.id} was started without stdin; start it with stdin=true "
                "(or pty=true for a terminal) to send it input"
            )
        proc = self._started_process(run, "send it input")
        async with run.hold():
            try:
                n = await proc.write(data, eof)
            except Conflict as e:
                raise type(e)(f"cannot write to job {run.job.id}: {e.message}") from None
            info: dict[str, Any] = {"length": n, "eof": True} if eof else {"length": n}
            if run.spec.record_input:
                info[RECORDED_INPUT] = base64.b64encode(data[:n]).decode("ascii")
            await self._store.append(run.job.id, EventType.INPUT, info)
        return n

    async def interrupt(self, job_id: str) -> str:
        """Interrupt the job as Ctrl-C at its terminal would: the one way every transport does it.

        A PTY job gets its terminal's interrupt character (VINTR, ^C unless the program changed
        it) written to the terminal, so the line discipline sends SIGINT to the foreground
        process group only: `sleep` in a shell stops, the shell lives on (recorded as an `input`
        event of length 1 with `interrupt`). A job without a terminal gets SIGINT to its group.
        A source gets Ctrl-C typed into its tmux or screen session (`interrupt_source`), which
        its terminal turns into SIGINT the same way.

        Returns:
            "VINTR" (a PTY job, or a source) or "SIGINT", what was done.

        Raises:
            JobFinished: the job has ended. Conflict: it is still queued, or its terminal does
            not read its input. SourceReadOnly: a source without a session in the config.
        """
        if await self.interrupt_source(job_id):
            return "VINTR"
        run = await self._lookup(job_id, "interrupt")
        proc = self._started_process(run, "interrupt it")
        async with run.hold():
            try:
                how = await proc.interrupt()
            except Conflict as e:
                raise type(e)(f"cannot interrupt job {run.job.id}: {e.message}") from None
            if how == "VINTR":
                info: dict[str, Any] = {"length": 1, "interrupt": True}
                if run.spec.record_input:
                    info[RECORDED_INPUT] = base64.b64encode(b"\x03").decode("ascii")
                await self._store.append(run.job.id, EventType.INPUT, info)
        logger.info("job %s: interrupted (%s)", run.job.id, how)
        return how

    async def interrupt_source(self, job_id: str) -> bool:
        """Ctrl-C into a source's tmux/screen session, recorded as an `input` event; False if
        `job_id` is no source (the caller interrupts the job's PTY instead).

        Raises:
            SourceReadOnly: a source without a session in the config. Conflict: the session
                could not be reached. JobFinished: the source is no longer watched.
        """
        source = await self._source(job_id)
        if source is None:
            return False
        sources = self._sources_for(source)
        await sources.interrupt(source)
        await self._store.append(source.id, EventType.INPUT, {"interrupt": True})
        logger.info("source %s: sent Ctrl-C to its session", source.id)
        return True

    async def _source(self, ref: str) -> Job | None:
        """The job `ref` names if it is a source; None for a job (or a job run here)."""
        if ref in self._runs or ref in self._waiting:
            return None
        job = await self._store.get_job(ref)
        return job if job.kind == "source" else None

    def _sources_for(self, job: Job) -> SourceInput:
        if job.status.is_final:
            raise JobFinished(f"job {job.id} is a source no longer watched; it takes no input")
        if self.sources is None:
            raise SourceReadOnly(f"job {job.id} is a source: it is read-only")
        return self.sources

    async def _write_source(self, job: Job, data: bytes) -> int:
        n = await self._sources_for(job).write(job, data)
        await self._store.append(job.id, EventType.INPUT, {"length": n})
        return n

    async def resize(self, job_id: str, cols: int, rows: int) -> None:
        """Set a PTY job's window size (a queued one starts with it) and record a `resize` event.

        Raises:
            BadRequest: size out of range. Conflict: not a PTY job. JobFinished: it has ended.
        """
        if not (0 < cols <= 1000 and 0 < rows <= 1000):
            raise BadRequest("cols and rows must be between 1 and 1000")
        run = await self._lookup(job_id, "resize")
        if not run.spec.pty:
            raise Conflict(
                f"job {run.job.id} does not run in a terminal; only pty=true jobs resize"
            )
        async with run.hold():
            run.spec = run.spec.model_copy(update={"cols": cols, "rows": rows})
            if run.proc is not None:
                run.proc.resize(cols, rows)
            await self._store.append(run.job.id, EventType.RESIZE, {"cols": cols, "rows": rows})

    async def _lookup(self, ref: str, action: str) -> _Run:
        run = self._runs.get(ref) or self._waiting.get(ref)
        if run is not None:
            return run
        job = await self._store.get_job(ref)
        run = self._runs.get(job.id) or self._waiting.get(job.id)
        if run is not None:
            return run
        if job.status.is_final:
            raise JobFinished(
                f"job {job.id} has already finished ({job.status}); cannot {action} it"
            )
        if job.kind == "source":
            path = job.source.path if job.source is not None else "a file"
            raise SourceReadOnly(
                f"job {job.id} is a source (it tails {path}), not a process: it cannot be "
                f"{_PAST.get(action, action)}; it is followed while a --watch pattern matches it"
            )
        raise Conflict(
            f"job {job.id} is {job.status} but not run by this server; cannot {action} it"
        )

    def _started_process(self, run: _Run, action: str) -> Process:
        if run.job.id in self._waiting or run.proc is None:
            raise Conflict(
                f"job {run.job.id} is queued and has not started; wait until it runs to {action}, "
                "or cancel it"
            )
        if run.proc.exited or run.ending:
            raise JobFinished(f"job {run.job.id} has already finished; cannot {action}")
        return run.proc

    # -- running --------------------------------------------------------------------------------

    def _start_waiting(self) -> None:
        if not self._started or self._closing:
            return
        while self._waiting and len(self._runs) < self.max_running:
            run = self._waiting.pop(next(iter(self._waiting)))
            self._runs[run.job.id] = run
            task = asyncio.create_task(self._supervise(run), name=f"jobcast-job-{run.job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _supervise(self, run: _Run) -> None:
        try:
            await self._execute(run)
        except Exception as e:
            logger.exception("job %s: the runner failed", run.job.id)
            await self._record_failure(run, e)
        finally:
            run.done.set()
            del self._runs[run.job.id]
            self._start_waiting()

    async def _execute(self, run: _Run) -> None:
        if run.ended_by is not None:
            await self._record_end(run.job.id, Outcome(run.ended_by, None, None, run.reason))
            return
        started = await self._spawn(run)
        if started is None:
            return
        proc, recorded = started
        spec = run.spec
        merged = spec.pty or spec.stderr == "merge"
        tail = EventType.STDOUT if merged else EventType.STDERR
        cap = self._settings.max_output_bytes
        if spec.max_output_bytes is not None:
            cap = min(cap, spec.max_output_bytes)
        sink = _Output(self._store, run.job.id, cap, tail)
        # Reads the output once stored, in a task of its own: never in the output's way.
        matcher = Matcher(
            self._store,
            run.job.id,
            combine(self._settings.extract, spec.extract),
            progress=self._settings.detect_progress,
            on_match=self._on_extraction,
        )
        if matcher.wanted:
            matcher.start()
        run.task = task = asyncio.create_task(proc.run(sink, self._window(run.job.id)))
        try:
            try:
                await recorded
            except BaseException:
                proc.signal(signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await task  # reaped, and what it printed kept if the store takes it
                raise
            if run.ended_by is not None:
                self._end(run, run.ended_by, run.reason or "")
            await asyncio.wait({task}, timeout=run.spec.timeout)
            if not task.done():
                reason = f"ran past its timeout of {run.spec.timeout:g}s"
                self._end(run, JobStatus.TIMED_OUT, reason)
            returncode = await task
            await matcher.finish()
        except BaseException:
            task.cancel()
            await matcher.cancel()
            raise
        if run.killer is not None:
            await run.killer
        await self._quiesce(run)
        result = outcome(returncode, run.ended_by, run.reason)
        failure = None
        if spec.command is not None and run.ended_by is None:
            failure = shell_failure(run.job.argv[0], returncode, sink.tail)
        if failure is not None:
            # Said as a program that cannot start is: the shell's own line is in the output too.
            error = {"message": failure.message, "code": failure.code}
            await self._store.append(run.job.id, EventType.ERROR, error)
            result = result._replace(reason=failure.message)
        await self._record_end(run.job.id, result, sink.dropped)

    async def _spawn(self, run: _Run) -> tuple[Process, asyncio.Future[Any]] | None:
        """Start the process; None if it could not start (recorded so).

        Its record as running (the `running` status, the process, the `command` event) is under
        way when this returns, not committed: the caller starts reading the output meanwhile, so
        the first output commits with that record or right after it, not one commit later. The
        tasks run in the order they are made, so nothing of the job's output is staged before it;
        and the job cannot have ended here (the supervisor is the only status writer).
        """
        request = self._request(run)
        try:
            proc = await self._backend.spawn(request)
        except SpawnError as e:
            error = {"message": str(e), "code": e.code}
            await self._store.append(run.job.id, EventType.ERROR, error)
            failed = Outcome(JobStatus.FAILED, e.exit_code, None, str(e))
            await self._record_end(run.job.id, failed)
            return None
        run.proc = proc
        command: dict[str, Any] = {"argv": request.argv, "cwd": request.cwd, "pty": request.pty}
        if request.merge_stderr:
            command["stderr"] = "merge"
        recorded = asyncio.gather(
            self._store.set_status(
                run.job.id,
                JobStatus.RUNNING,
                process=proc.info,
                started_at=time.time(),
                pid=proc.info[0],
            ),
            self._store.append(run.job.id, EventType.COMMAND, command),
        )
        return proc, recorded

    def _request(self, run: _Run) -> SpawnRequest:
        spec = run.spec
        cwd = os.path.abspath(os.path.expanduser(spec.cwd)) if spec.cwd else os.getcwd()
        # The server's own settings (JOBCAST_*) are not the job's business, and may be secret.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
        # PWD names the job's directory, as a shell started there sets it; not the server's.
        env = {**(inherited if spec.inherit_env else {}), **spec.env}
        env.update(PWD=cwd, **{JOB_ID_ENV: run.job.id})
        if spec.pty and "TERM" not in spec.env:
            # The server's own TERM names the terminal it was started from, not the job's.
            env["TERM"] = PTY_TERM
        context = Pastes(self._settings.data_dir).paths(spec.context)
        if context:
            env[CONTEXT_ENV] = ":".join(context)
        return SpawnRequest(
            argv=list(run.job.argv),
            cwd=cwd,
            env=env,
            stdin=spec.stdin,
            merge_stderr=spec.stderr == "merge" and not spec.pty,
            stdin_file=context[0] if spec.context_stdin else None,
            pty=spec.pty,
            cols=spec.cols,
            rows=spec.rows,
            kill_grace=self._settings.kill_grace_seconds,
        )

    def _window(self, job_id: str) -> Callable[[], float]:
        base, followers = self._settings.batch_window_ms, self._followers
        failed = False

        def window() -> float:
            nonlocal failed
            try:
                n = followers(job_id) if followers is not None and not failed else 1
            except Exception:
                # A failing count must not stop the pump (and block the job on a full pipe).
                logger.exception("job %s: counting followers failed; using 1", job_id)
                failed, n = True, 1
            return batch_window(base, n)

        return window

    def _end(self, run: _Run, status: JobStatus, reason: str) -> None:
        """End a run's process, once: SIGTERM to its group, SIGKILL after the grace."""
        if run.ended_by is None and not (run.proc is not None and run.proc.exited):
            run.ended_by, run.reason = status, reason
        if run.task is not None and run.killer is None:
            run.killer = asyncio.create_task(self._kill(run.proc, run.task))

    async def _kill(self, proc: Process | None, task: asyncio.Task[int]) -> None:
        if proc is None:
            return
        proc.signal(signal.SIGTERM)
        proc.signal(signal.SIGCONT)
        await asyncio.wait({task}, timeout=self._settings.kill_grace_seconds)
        if not task.done():
            logger.info("pid %d outlived SIGTERM; sending SIGKILL to its group", proc.info[0])
            proc.signal(signal.SIGKILL)

    # -- recording the end ----------------------------------------------------------------------

    async def _cancel_waiting(self, run: _Run, reason: str) -> None:
        del self._waiting[run.job.id]
        try:
            await self._record_end(run.job.id, Outcome(JobStatus.CANCELLED, None, None, reason))
        except Exception:
            logger.exception("job %s: could not record it cancelled", run.job.id)
        finally:
            run.done.set()

    async def _quiesce(self, run: _Run) -> None:
        """Refuse new input/resize events for the run and let those in flight land first."""
        run.ending = True
        if run.holds:
            await run.idle.wait()

    async def _record_end(self, job_id: str, result: Outcome, dropped: int = 0) -> None:
        """Record the final status; the store appends the `complete` event in the same step."""
        await self._store.set_status(
            job_id,
            result.status,
            finished_at=time.time(),
            exit_code=result.exit_code,
            signal=result.signal,
            reason=result.reason,
            dropped_bytes=dropped,
        )

    async def _record_failure(self, run: _Run, exc: Exception) -> None:
        message = f"the runner failed: {exc}"
        try:
            await self._quiesce(run)
            error = {"message": message, "code": "runner_failed"}
            await self._store.append(run.job.id, EventType.ERROR, error)
            await self._record_end(run.job.id, Outcome(JobStatus.FAILED, None, None, message))
        except Exception:
            logger.exception("job %s: could not record that the runner failed", run.job.id)
