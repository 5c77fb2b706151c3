"""`Client`: the blocking Python client of a jobcast server, on httpx and websockets' sync API."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    from websockets.sync.client import ClientConnection

__all__ = ["Client", "JobSocket"]

T = TypeVar("T")
X = TypeVar("X")


class Client:
    """A blocking client of one jobcast server.

    Args:
        url: The server, such as `http://127.0.0.1:8080`; default `JOBCAST_URL`, else that.
        token: Sent as `Authorization: Bearer`; default `JOBCAST_TOKEN`, else (for a server on
            127.0.0.1 or localhost) the token file of `JOBCAST_DATA_DIR` or `./.jobcast`.
        timeout: Seconds to connect and to get an answer (streams may stay quiet longer).
        reconnect_timeout: How long `events` and `follow_log` keep trying to reach the server
            before they raise `ConnectionFailed`; None tries forever.
        transport: An httpx transport to use instead of the network (tests).

    Every method raises the `JobcastError` the server answered (`JobNotFound`, ...), and
    `ConnectionFailed` when the server cannot be reached. Use it as a context manager, or `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect_timeout: float | None = RECONNECT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig.build(url, token, timeout, reconnect_timeout)
        self._http = httpx.Client(
            base_url=self._config.url,
            headers=self._config.headers(),
            timeout=self._config.http_timeout(),
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._config.url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used afterwards."""
        self._http.close()

    # -- jobs -----------------------------------------------------------------------------------

    def run(
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
        timeout: float | None = None,
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
        return self.submit(spec)

    def run_template(
        self,
        template: str,
        args: Mapping[str, str | int | bool] | None = None,
        *,
        stderr: Literal["pipe", "merge"] = "pipe",
        cols: int = 80,
        rows: int = 24,
        stdin: bool = False,
        record_input: bool = False,
        timeout: float | None = None,
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
        return self.submit(spec)

    def chat(self, message: str, *, context: Sequence[str] = ()) -> Job:
        """Start the server's `chat` template with `message` as its one argument (never
        through a shell), and `context` (paste refs, see `paste()`) in its $JOBCAST_CONTEXT;
        follow it with `events()`.

        Raises:
            NotFound: the server has no `chat` template (the message says how to define one).
            ValidationFailed: the message breaks the template's rule, or a ref is unknown.
            PolicyDenied: the policy refuses it.
        """
        return self._call(API.chat(message, context))

    def direct(self, command: str, *, context: Sequence[str] = ()) -> Job:
        """Start a template from a command line, `NAME [--flag] [--key=value] [ARG...]`, split
        as a shell would (none runs it): flags for booleans, the other words for the remaining
        parameters in their declared order.

        Raises:
            NotFound: the server has no templates.
            ValidationFailed: no such template, or a bad argument (the message names it).
            PolicyDenied: the policy refuses it.
        """
        return self._call(API.direct(command, context))

    def templates(self) -> dict[str, Any]:
        """The policy's mode and its templates, each with its arguments' JSON Schema."""
        return self._call(API.templates())

    def submit(self, spec: JobSpec) -> Job:
        """Start the job `spec` describes; see `run`."""
        return self._call(API.submit(spec))

    def jobs(
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
        return self._call(API.jobs(status, labels, name, limit, cursor, kind))

    def job(self, ref: str) -> Job:
        """The job with this id or name.

        Raises:
            JobNotFound: there is none.
        """
        return self._call(API.job(ref))

    def wait(self, ref: str) -> Job:
        """Block until the job has finished, and return it as it ended."""
        job = self.job(ref)
        if not job.status.is_final:
            for _ in self.events(job.id, after=job.last_seq):
                pass
            job = self.job(job.id)
        return job

    def cancel(self, ref: str) -> Job:
        """Ask the job to stop (SIGTERM to its process group, SIGKILL after a grace).

        Raises:
            JobFinished: it had already finished.
        """
        return self._call(API.cancel(ref))

    def send(self, ref: str, data: str | bytes, *, eof: bool = False) -> int:
        """Write to the job's stdin (or its terminal); `eof=True` closes stdin afterwards.

        Returns:
            The number of bytes written.

        Raises:
            NoStdin: the job was not started with `stdin=True` (nor `pty=True`).
        """
        return self._call(API.send(ref, data, eof))

    def signal(self, ref: str, sig: str | int) -> str:
        """Send a signal (`"INT"`, `"SIGTERM"`, `signal.SIGHUP`) to the job's process group.

        Returns:
            The signal's name as the server delivered it, such as `"SIGINT"`.
        """
        return self._call(API.signal(ref, sig))

    def resize(self, ref: str, cols: int, rows: int) -> None:
        """Set the window size of a job's terminal (`pty=True`)."""
        self._call(API.resize(ref, cols, rows))

    def prune(
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
        return self._call(API.prune(older_than, max_jobs, max_bytes, dry_run))

    def delete(self, ref: str) -> None:
        """Forget a finished job and its output.

        Raises:
            JobNotFinished: it is still queued or running.
        """
        self._call(API.delete(ref))

    # -- output ---------------------------------------------------------------------------------

    def lines(
        self, ref: str, *, after_line: int = 0, stream: LogStream = "all", limit: int | None = None
    ) -> dict[str, Any]:
        """A page of the job's complete lines after line `after_line`: `{"lines": [{line,
        line_no, stream}], "last_line", "complete"}`; pass `last_line` as `after_line` next."""
        page: dict[str, Any] = self._call(API.lines(ref, after_line, stream, limit))
        return page

    def log(
        self, ref: str, *, stream: LogStream = "all", offset: int = 0, end: int | None = None
    ) -> bytes:
        """The job's output so far, as raw bytes: `stream` from `offset` up to `end` (exclusive)."""
        return self._call(API.log(ref, stream, offset, end))

    def follow_log(
        self, ref: str, *, stream: LogStream = "all", offset: int = 0, follow: bool = True
    ) -> Generator[bytes, None, None]:
        """The job's raw output from `offset`, chunk by chunk as it is written, until the job ends.

        A dropped connection is reopened at the offset reached, so no byte is lost or repeated.
        With `follow=False`, it ends at the output written so far.
        """
        cursor = LogCursor(ref, stream, offset, follow)
        # A follow ends when the job does; an end before that (the server restarting) resumes.
        return self._resume(
            cursor.call,
            cursor.feed,
            lambda: False,
            lambda: not follow or self.job(ref).status.is_final,
        )

    def events(self, ref: str, *, after: int = 0) -> Generator[Event, None, None]:
        """The job's events after seq `after`, live, ending with its `complete` event.

        Dropped connections, timeouts and 5xx answers reconnect with backoff and resume after the
        last event seen: each event arrives exactly once, in order. Output events carry their
        exact bytes in `raw`.

        Raises:
            JobNotFound: no such job (errors other than passing ones are never retried).
            ConnectionFailed: the server stayed out of reach for `reconnect_timeout`.
        """
        cursor = EventCursor(after)
        # An end without `complete` is the server going away, unless `after` was already past it.
        return self._resume(
            lambda: API.events(ref, cursor),
            cursor.feed,
            lambda: cursor.done,
            lambda: cursor.caught_up(self.job(ref)),
        )

    def firehose(
        self, *, output: bool = False, after: int | None = None
    ) -> Generator[Event, None, None]:
        """Every job's lifecycle events (and output with `output=True`) from now, or after the
        global position `after` (each event's `gid`), forever, resuming across reconnects."""
        cursor = EventCursor(after, firehose=True)
        return self._resume(
            lambda: API.firehose(cursor, output), cursor.feed, lambda: False, lambda: False
        )

    def connect(self, ref: str, *, after: int = 0, raw: bool = False) -> JobSocket:
        """Open the job's WebSocket: events as JSON (or, with `raw=True`, output as bytes), and
        input, resize, signal and cancel messages the other way. It does not reconnect.
        """
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect as ws_connect

        url, options = self._config.job_socket(ref, after, raw)
        try:
            conn = ws_connect(url, **options)
        except (OSError, TimeoutError, WebSocketException) as e:
            raise socket_failed(self.url, e) from e
        return JobSocket(conn, raw=raw, url=self.url)

    # -- pastes and the trace ---------------------------------------------------------------------

    def paste(self, data: str | bytes) -> Paste:
        """Store `data` on the server; its `ref` (`ctx://paste/<sha256>`) goes in a job's
        `context`. The same content gives the same ref, and is stored once.

        Raises:
            PayloadTooLarge: past the server's max_paste_bytes.
        """
        return self._call(API.paste(data))

    def get_paste(self, ref: str) -> bytes:
        """A paste's content, by its ref or its hash.

        Raises:
            PasteNotFound: the server has no such paste.
        """
        return self._call(API.get_paste(ref))

    def trace(
        self,
        *,
        limit: int | None = None,
        ops: Sequence[str] = (),
        job: str | None = None,
        after: int | None = None,
    ) -> list[TraceEntry]:
        """The trace ledger's entries, newest first: at most `limit` (the server's default 100),
        of the operations `ops` (all if empty), of `job`, with `seq` past `after`."""
        return self._call(API.trace(limit, ops, job, after))

    def follow_trace(self, *, after: int = 0) -> Generator[TraceEntry, None, None]:
        """The ledger's new entries as they are written (with `seq` past `after`), forever,
        reconnecting when the connection drops (entries written meanwhile are not replayed)."""
        cursor = TraceCursor(after)
        return self._resume(
            lambda: API.trace_stream(cursor), cursor.feed, lambda: False, lambda: False
        )

    # -- server ---------------------------------------------------------------------------------

    def status(self) -> ServerStatus:
        """The server's version, uptime and job counts by status."""
        return self._call(API.status())

    def stats(self) -> ServerStats:
        """Streaming figures: connected clients, per job, and events and bytes sent."""
        return self._call(API.stats())

    # -- plumbing -------------------------------------------------------------------------------

    def _call(self, call: Call[T]) -> T:
        try:
            resp = self._http.request(
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

    @contextmanager
    def _stream(self, call: Call[Any]) -> Iterator[httpx.Response]:
        with self._http.stream(
            call.method,
            call.path,
            params=call.params,
            headers=call.headers,
            timeout=self._config.stream_timeout(),
        ) as resp:
            if resp.status_code >= 400:
                raise error_from_body(resp.status_code, bytes(resp.read()))
            yield resp

    def _resume(
        self,
        next_call: Callable[[], Call[Any]],
        feed: Callable[[bytes], list[X]],
        done: Callable[[], bool],
        ended: Callable[[], bool],
    ) -> Generator[X, None, None]:
        """Open `next_call()`, yield what `feed` makes of its chunks until `done()`; when the
        connection fails (or ends before `ended()` agrees it should), wait and open it again."""
        retry = Reconnect(self.url, self._config.reconnect_timeout)
        while True:
            failure: Exception | None = None
            try:
                with self._stream(next_call()) as resp:
                    retry.connected()
                    for chunk in resp.iter_bytes():
                        items = feed(chunk)
                        if items:
                            retry.progressed()
                            yield from items
                        if done():
                            return
                if ended():
                    return
            except Exception as exc:  # sorted by `retry.delay`: fatal ones are raised there
                failure = exc
            time.sleep(retry.delay(failure))


class JobSocket:
    """A job's WebSocket (from `Client.connect`). Iterate `events()` (or `chunks()` when opened
    with `raw=True`); send with `send_input`, `resize`, `signal`, `cancel`. Close it when done.
    """

    def __init__(self, conn: ClientConnection, *, raw: bool, url: str) -> None:
        # Entering marks the connection as managed; websockets >= 17.1 warns about bare ones.
        self._conn = conn.__enter__()
        self._raw = raw
        self._url = url

    def __enter__(self) -> JobSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket (the job goes on)."""
        self._conn.close()

    @property
    def closed(self) -> bool:
        """Whether the connection has ended: the server closed it, or it broke."""
        from websockets.protocol import State

        return self._conn.state is State.CLOSED

    def events(self) -> Iterator[Event]:
        """The job's events as they come, until its `complete` event or the server closes.

        Raises:
            JobcastError: what the server answered to a message that failed, such as `NoStdin`
                for input to a job without stdin. Iterate again to go on.
        """
        if self._raw:
            raise RuntimeError("this socket was opened with raw=True: iterate chunks() instead")
        for message in self._messages():
            ev = event_from_ws(message)
            if ev is not None:
                yield ev
                if ev.type is EventType.COMPLETE:
                    return

    def chunks(self) -> Iterator[bytes]:
        """Raw output bytes (stdout and stderr as they came) until the server closes.

        Raises:
            JobcastError: what the server answered to a message that failed.
        """
        if not self._raw:
            raise RuntimeError("this socket was opened for JSON events: iterate events() instead")
        for message in self._messages():
            if isinstance(message, bytes):
                yield message
            else:
                event_from_ws(message)  # raises the error the text frame carries

    def send_input(self, data: str | bytes) -> None:
        """Type `data` into the job's stdin or terminal."""
        self._conn.send(ws_message("input", data=data))

    def resize(self, cols: int, rows: int) -> None:
        """Set the size of the job's terminal."""
        self._conn.send(ws_message("resize", cols=cols, rows=rows))

    def signal(self, sig: str | int) -> None:
        """Send a signal (`"INT"`, `signal.SIGTERM`) to the job's processes."""
        self._conn.send(ws_message("signal", signal=signal_name(sig)))

    def cancel(self) -> None:
        """Ask the job to stop, as `cancel` does."""
        self._conn.send(ws_message("cancel"))

    def _messages(self) -> Iterator[str | bytes]:
        from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

        try:
            while True:
                yield self._conn.recv()
        except ConnectionClosedOK:
            return
        except ConnectionClosedError as e:
            raise socket_closed(self._url, e) from e
