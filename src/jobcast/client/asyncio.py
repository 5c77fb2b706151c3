"""`AsyncClient`: the asyncio Python client of a jobcast server, on httpx and websockets.

The twin of `sync.Client`: the same methods with the same arguments, awaited; streams are async
iterators. Close an unfinished stream with `contextlib.aclosing` (or let it be collected).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from ..models import (
    Event,
    EventType,
    Job,
    JobKind,
    JobList,
    JobSpec,
    JobStatus,
    Paste,
    PruneResult,
    TraceEntry,
)
from .base import (
    API,
    DEFAULT_TIMEOUT,
    RECONNECT_TIMEOUT,
    Call,
    ClientConfig,
    LogStream,
    ServerStats,
    ServerStatus,
    connection_failed,
    error_from_body,
    event_from_ws,
    make_spec,
    signal_name,
    socket_closed,
    socket_failed,
    template_spec,
    ws_message,
)
from .stream import EventCursor, LogCursor, Reconnect, TraceCursor

if TYPE_CHECKING:
    # websockets is imported by `connect`, the one method that needs it: the others start faster
    from websockets.asyncio.client import ClientConnection

__all__ = ["AsyncClient", "AsyncJobSocket"]

T = TypeVar("T")
X = TypeVar("X")


class AsyncClient:
    """An asyncio client of one jobcast server; see `Client` for the arguments and errors.

    Use it as an async context manager, or `await client.aclose()`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect_timeout: float | None = RECONNECT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig.build(url, token, timeout, reconnect_timeout)
        self._http = httpx.AsyncClient(
            base_url=self._config.url,
            headers=self._config.headers(),
            timeout=self._config.http_timeout(),
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._config.url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        await self._http.aclose()

    # -- jobs -----------------------------------------------------------------------------------

    async def run(
        self,
        command: str | Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        stderr: Literal["pipe", "merge"] = "pipe",
        pty: bool = False,
        cols: int = 80,
        rows: int = 24,
        stdin: bool = False,
        record_input: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's time limit, not this call's
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Job:
        """Start a job and return it at once (it is usually `queued` or `running`).

        Args:
            command: A shell command line (`"make test"`), or an argv list (`["make", "test"]`).
            cwd: Its working directory on the server; the server's own if None.
            env: Variables added to the server's environment.
            inherit_env: False: `env` is the job's whole environment (the server's is not added).
            stderr: "merge" sends stderr into stdout's pipe: one stream, in the exact order of
                the writes, all `stdout` events (as `2>&1`). "pipe" keeps them apart, in the order
                the server read them.
            pty: Run it in a pseudo-terminal of `cols` x `rows` (stdout and stderr merge).
            stdin: Keep its stdin open for `send`.
            record_input: Keep what is typed into it (and interrupts) for its recording's `i`
                events, which only tokens that may drive it get.
            timeout: Seconds after which it is ended, `timed_out`.
            name: A name usable instead of its id while it is active.
            labels: Key-value tags to filter `jobs()` by.

        Raises:
            ValidationFailed: a field is wrong (checked before anything is sent).
            NameTaken: an active job already has this name.
        """
        spec = make_spec(
            command,
            cwd=cwd,
            env=dict(env or {}),
            inherit_env=inherit_env,
            stderr=stderr,
            pty=pty,
            cols=cols,
            rows=rows,
            stdin=stdin,
            record_input=record_input,
            timeout=timeout,
            name=name,
            labels=dict(labels or {}),
        )
        return await self.submit(spec)

    async def run_template(
        self,
        template: str,
        args: Mapping[str, str | int | bool] | None = None,
        *,
        stderr: Literal["pipe", "merge"] = "pipe",
        cols: int = 80,
        rows: int = 24,
        stdin: bool = False,
        record_input: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's time limit, not this call's
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Job:
        """Start the server's template `template` (see `templates()`) with `args`, by
        parameter name; the template sets the command, its directory and environment.

        Raises:
            ValidationFailed: an argument is missing or breaks its parameter's rule (the
                message names it), or there is no such template.
            PolicyDenied: the policy refuses it.
        """
        spec = template_spec(
            template,
            args or {},
            stderr=stderr,
            cols=cols,
            rows=rows,
            stdin=stdin,
            record_input=record_input,
            timeout=timeout,
            name=name,
            labels=dict(labels or {}),
        )
        return await self.submit(spec)

    async def chat(self, message: str, *, context: Sequence[str] = ()) -> Job:
        """Start the server's `chat` template with `message` as its one argument (never
        through a shell), and `context` (paste refs, see `paste()`) in its $JOBCAST_CONTEXT;
        follow it with `events()`.

        Raises:
            NotFound: the server has no `chat` template (the message says how to define one).
            ValidationFailed: the message breaks the template's rule, or a ref is unknown.
            PolicyDenied: the policy refuses it.
        """
        return await self._call(API.chat(message, context))

    async def direct(self, command: str, *, context: Sequence[str] = ()) -> Job:
        """Start a template from a command line, `NAME [--flag] [--key=value] [ARG...]`, split
        as a shell would (none runs it): flags for booleans, the other words for the remaining
        parameters in their declared order.

        Raises:
            NotFound: the server has no templates.
            ValidationFailed: no such template, or a bad argument (the message names it).
            PolicyDenied: the policy refuses it.
        """
        return await self._call(API.direct(command, context))

    async def templates(self) -> dict[str, Any]:
        """The policy's mode and its templates, each with its arguments' JSON Schema."""
        return await self._call(API.templates())

    async def submit(self, spec: JobSpec) -> Job:
        """Start the job `spec` describes."""
        return await self._call(API.submit(spec))

    async def jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        labels: Mapping[str, str] | None = None,
        name: str | None = None,
        kind: JobKind | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobList:
        """One page of jobs, newest first; pass `next_cursor` as `cursor` for the next page.
        `kind`: only `"job"`s (processes run) or only `"source"`s (files tailed, `--watch`)."""
        return await self._call(API.jobs(status, labels, name, limit, cursor, kind))

    async def job(self, ref: str) -> Job:
        """The job with this id or name.

        Raises:
            JobNotFound: there is none.
        """
        return await self._call(API.job(ref))

    async def wait(self, ref: str) -> Job:
        """Wait until the job has finished, and return it as it ended."""
        job = await self.job(ref)
        if not job.status.is_final:
            async for _ in self.events(job.id, after=job.last_seq):
                pass
            job = await self.job(job.id)
        return job

    async def cancel(self, ref: str) -> Job:
        """Ask the job to stop (SIGTERM to its process group, SIGKILL after a grace).

        Raises:
            JobFinished: it had already finished.
        """
        return await self._call(API.cancel(ref))

    async def send(self, ref: str, data: str | bytes, *, eof: bool = False) -> int:
        """Write to the job's stdin (or its terminal); `eof=True` closes stdin afterwards.

        Returns:
            The number of bytes written.

        Raises:
            NoStdin: the job was not started with `stdin=True` (nor `pty=True`).
        """
        return await self._call(API.send(ref, data, eof))

    async def signal(self, ref: str, sig: str | int) -> str:
        """Send a signal (`"INT"`, `"SIGTERM"`, `signal.SIGHUP`) to the job's process group.

        Returns:
            The signal's name as the server delivered it, such as `"SIGINT"`.
        """
        return await self._call(API.signal(ref, sig))

    async def resize(self, ref: str, cols: int, rows: int) -> None:
        """Set the window size of a job's terminal (`pty=True`)."""
        await self._call(API.resize(ref, cols, rows))

    async def prune(
        self,
        *,
        older_than: float | None = None,
        max_jobs: int | None = None,
        max_bytes: int | None = None,
        dry_run: bool = False,
    ) -> PruneResult:
        """Delete finished jobs, oldest first: those that ended `older_than` seconds ago or more
        (0: all), and the oldest beyond the newest `max_jobs` or `max_bytes` of output. Given no
        rule, the server applies its retention settings. Queued and running jobs are never
        deleted. Returns once the jobs and their space are gone; `dry_run` deletes nothing.
        """
        return await self._call(API.prune(older_than, max_jobs, max_bytes, dry_run))

    async def delete(self, ref: str) -> None:
        """Forget a finished job and its output.

        Raises:
            JobNotFinished: it is still queued or running.
        """
        await self._call(API.delete(ref))

    # -- output ---------------------------------------------------------------------------------

    async def lines(
        self, ref: str, *, after_line: int = 0, stream: LogStream = "all", limit: int | None = None
    ) -> dict[str, Any]:
        """A page of the job's complete lines after line `after_line`: `{"lines": [{line,
        line_no, stream}], "last_line", "complete"}`; pass `last_line` as `after_line` next."""
        page: dict[str, Any] = await self._call(API.lines(ref, after_line, stream, limit))
        return page

    async def log(
        self, ref: str, *, stream: LogStream = "all", offset: int = 0, end: int | None = None
    ) -> bytes:
        """The job's output so far, as raw bytes: `stream` from `offset` up to `end` (exclusive)."""
        return await self._call(API.log(ref, stream, offset, end))

    def follow_log(
        self, ref: str, *, stream: LogStream = "all", offset: int = 0, follow: bool = True
    ) -> AsyncGenerator[bytes, None]:
        """The job's raw output from `offset`, chunk by chunk, until the job ends; resumes at the
        offset reached when the connection drops. See `Client.follow_log`."""
        cursor = LogCursor(ref, stream, offset, follow)

        async def ended() -> bool:
            return not follow or (await self.job(ref)).status.is_final

        return self._resume(cursor.call, cursor.feed, lambda: False, ended)

    def events(self, ref: str, *, after: int = 0) -> AsyncGenerator[Event, None]:
        """The job's events after seq `after`, live, ending with its `complete` event; each
        exactly once, in order, across reconnects. See `Client.events`.

        Raises:
            JobNotFound: no such job (errors other than passing ones are never retried).
            ConnectionFailed: the server stayed out of reach for `reconnect_timeout`.
        """
        cursor = EventCursor(after)

        async def ended() -> bool:
            # An end without `complete` is the server going away, unless `after` was past it.
            return cursor.caught_up(await self.job(ref))

        return self._resume(
            lambda: API.events(ref, cursor), cursor.feed, lambda: cursor.done, ended
        )

    def firehose(
        self, *, output: bool = False, after: int | None = None
    ) -> AsyncGenerator[Event, None]:
        """Every job's lifecycle events (and output with `output=True`) from now, or after the
        global position `after`, forever. See `Client.firehose`."""
        cursor = EventCursor(after, firehose=True)
        return self._resume(lambda: API.firehose(cursor, output), cursor.feed, lambda: False, _no)

    async def connect(self, ref: str, *, after: int = 0, raw: bool = False) -> AsyncJobSocket:
        """Open the job's WebSocket; see `Client.connect`. It does not reconnect."""
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import WebSocketException

        url, options = self._config.job_socket(ref, after, raw)
        try:
            conn = await ws_connect(url, **options)
        except (OSError, TimeoutError, WebSocketException) as e:
            raise socket_failed(self.url, e) from e
        return AsyncJobSocket(conn, raw=raw, url=self.url)

    # -- pastes and the trace ---------------------------------------------------------------------

    async def paste(self, data: str | bytes) -> Paste:
        """Store `data` on the server; see `Client.paste`."""
        return await self._call(API.paste(data))

    async def get_paste(self, ref: str) -> bytes:
        """A paste's content, by its ref or its hash; see `Client.get_paste`."""
        return await self._call(API.get_paste(ref))

    async def trace(
        self,
        *,
        limit: int | None = None,
        ops: Sequence[str] = (),
        job: str | None = None,
        after: int | None = None,
    ) -> list[TraceEntry]:
        """The trace ledger's entries, newest first; see `Client.trace`."""
        return await self._call(API.trace(limit, ops, job, after))

    def follow_trace(self, *, after: int = 0) -> AsyncGenerator[TraceEntry, None]:
        """The ledger's new entries as they are written; see `Client.follow_trace`."""
        cursor = TraceCursor(after)
        return self._resume(lambda: API.trace_stream(cursor), cursor.feed, lambda: False, _no)

    # -- server ---------------------------------------------------------------------------------

    async def status(self) -> ServerStatus:
        """The server's version, uptime and job counts by status."""
        return await self._call(API.status())

    async def stats(self) -> ServerStats:
        """Streaming figures: connected clients, per job, and events and bytes sent."""
        return await self._call(API.stats())

    # -- plumbing -------------------------------------------------------------------------------

    async def _call(self, call: Call[T]) -> T:
        try:
            resp = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                content=call.content,
                headers=call.headers,
                timeout=self._config.slow_timeout() if call.slow else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as e:
            raise connection_failed(self.url, e) from e
        return call.result(resp.status_code, resp.content)

    @asynccontextmanager
    async def _stream(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        async with self._http.stream(
            call.method,
            call.path,
            params=call.params,
            headers=call.headers,
            timeout=self._config.stream_timeout(),
        ) as resp:
            if resp.status_code >= 400:
                raise error_from_body(resp.status_code, bytes(await resp.aread()))
            yield resp

    async def _resume(
        self,
        next_call: Callable[[], Call[Any]],
        feed: Callable[[bytes], list[X]],
        done: Callable[[], bool],
        ended: Callable[[], Awaitable[bool]],
    ) -> AsyncGenerator[X, None]:
        """Open `next_call()`, yield what `feed` makes of its chunks until `done()`; when the
        connection fails (or ends before `ended()` agrees it should), wait and open it again."""
        retry = Reconnect(self.url, self._config.reconnect_timeout)
        while True:
            failure: Exception | None = None
            try:
                async with self._stream(next_call()) as resp:
                    retry.connected()
                    async for chunk in resp.aiter_bytes():
                        items = feed(chunk)
                        if items:
                            retry.progressed()
                            for item in items:
                                yield item
                        if done():
                            return
                if await ended():
                    return
            except Exception as exc:  # sorted by `retry.delay`: fatal ones are raised there
                failure = exc
            await asyncio.sleep(retry.delay(failure))


async def _no() -> bool:
    return False


class AsyncJobSocket:
    """A job's WebSocket (from `AsyncClient.connect`); see `JobSocket`."""

    def __init__(self, conn: ClientConnection, *, raw: bool, url: str) -> None:
        self._conn = conn
        self._raw = raw
        self._url = url

    async def __aenter__(self) -> AsyncJobSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the socket (the job goes on)."""
        await self._conn.close()

    @property
    def closed(self) -> bool:
        """Whether the connection has ended: the server closed it, or it broke."""
        from websockets.protocol import State

        return self._conn.state is State.CLOSED

    async def events(self) -> AsyncIterator[Event]:
        """The job's events as they come, until its `complete` event or the server closes.

        Raises:
            JobcastError: what the server answered to a message that failed, such as `NoStdin`
                for input to a job without stdin. Iterate again to go on.
        """
        if self._raw:
            raise RuntimeError("this socket was opened with raw=True: iterate chunks() instead")
        async for message in self._messages():
            ev = event_from_ws(message)
            if ev is not None:
                yield ev
                if ev.type is EventType.COMPLETE:
                    return

    async def chunks(self) -> AsyncIterator[bytes]:
        """Raw output bytes (stdout and stderr as they came) until the server closes.

        Raises:
            JobcastError: what the server answered to a message that failed.
        """
        if not self._raw:
            raise RuntimeError("this socket was opened for JSON events: iterate events() instead")
        async for message in self._messages():
            if isinstance(message, bytes):
                yield message
            else:
                event_from_ws(message)  # raises the error the text frame carries

    async def send_input(self, data: str | bytes) -> None:
        """Type `data` into the job's stdin or terminal."""
        await self._conn.send(ws_message("input", data=data))

    async def resize(self, cols: int, rows: int) -> None:
        """Set the size of the job's terminal."""
        await self._conn.send(ws_message("resize", cols=cols, rows=rows))

    async def signal(self, sig: str | int) -> None:
        """Send a signal (`"INT"`, `signal.SIGTERM`) to the job's processes."""
        await self._conn.send(ws_message("signal", signal=signal_name(sig)))

    async def cancel(self) -> None:
        """Ask the job to stop, as `cancel` does."""
        await self._conn.send(ws_message("cancel"))

    async def _messages(self) -> AsyncIterator[str | bytes]:
        from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

        try:
            while True:
                yield await self._conn.recv()
        except ConnectionClosedOK:
            return
        except ConnectionClosedError as e:
            raise socket_closed(self._url, e) from e
