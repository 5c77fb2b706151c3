"""Resuming streams: the SSE and log resume cursors, and when and how long to retry."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx
import orjson

from ..errors import ConnectionFailed, JobcastError
from ..models import Event, EventType, Job, TraceEntry
from ..protocol import SSEMessage, SSEParser
from .base import API, Call, LogStream, connection_failed, event_from_json

__all__ = ["EventCursor", "LogCursor", "Reconnect", "TraceCursor", "backoff", "is_retryable"]


# -- resume cursors -----------------------------------------------------------------------------


class LogCursor:
    """The resume point of a raw log download: the offset reached in the chosen stream."""

    def __init__(self, ref: str, stream: LogStream, offset: int, follow: bool) -> None:
        self.ref, self.stream, self.offset, self.follow = ref, stream, offset, follow

    def call(self) -> Call[bytes]:
        return API.log(self.ref, self.stream, self.offset, follow=self.follow)

    def feed(self, chunk: bytes) -> list[bytes]:
        self.offset += len(chunk)
        return [chunk] if chunk else []


class EventCursor:
    """The resume point of an SSE stream: parses what arrives, drops what was already seen.

    Per-job streams count in `seq` and are `done` after the `complete` event; the firehose
    (`firehose=True`) counts in the global position of its `id:` lines and never ends. Call
    `resume()` before each connection, then `feed()` it every chunk of that connection.
    """

    def __init__(self, after: int | None = 0, *, firehose: bool = False) -> None:
        self.last = after
        self.done = False
        self._firehose = firehose
        self._parser = SSEParser()

    def resume(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """Query parameters and headers that continue after the last event seen."""
        # A fresh parser per connection: the tail of a message cut off by a dropped connection is
        # sent again whole by the server, and must not be glued to the next connection's bytes.
        self._parser = SSEParser()
        if self.last is None:
            return [], {}
        headers = {"Last-Event-ID": str(self.last)} if self.last else {}
        return [("after", str(self.last))], headers

    def caught_up(self, job: Job) -> bool:
        """Whether nothing more will come: `job` has finished and every event of it was seen."""
        return job.status.is_final and (self.last or 0) >= job.last_seq

    def feed(self, chunk: bytes) -> list[Event]:
        """The new events completed by `chunk`, in order, each one only once."""
        out: list[Event] = []
        for msg in self._parser.feed(chunk):
            ev = self._accept(msg)
            if ev is not None:
                out.append(ev)
        return out

    def _accept(self, msg: SSEMessage) -> Event | None:
        if msg.event == "trace":
            return None  # the ledger's entries on the firehose: no event, and no position
        obj = orjson.loads(msg.data)
        ident = int(msg.id) if msg.id and msg.id.isdigit() else None
        position = ident if self._firehose and ident is not None else int(obj["seq"])
        if self.last is not None and position <= self.last:
            return None  # replayed after a reconnect: the caller has it already
        self.last = position
        try:
            ev = event_from_json(obj, gid=position if self._firehose else 0)
        except ValueError:
            return None  # a type this client does not know (a newer server): skip, keep the place
        if ev.type is EventType.COMPLETE and not self._firehose:
            self.done = True
        return ev


class TraceCursor:
    """The firehose read for the trace ledger's entries alone, each once (by its `seq`).

    The entries carry no firehose position: a reconnect starts from the live end again, and
    entries written while disconnected are not replayed (`GET /trace?after=` has them).
    """

    def __init__(self, after: int = 0) -> None:
        self.last = after
        self._parser = SSEParser()

    def resume(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        self._parser = SSEParser()
        return [], {}

    def feed(self, chunk: bytes) -> list[TraceEntry]:
        out = []
        for msg in self._parser.feed(chunk):
            if msg.event != "trace":
                continue
            entry = TraceEntry.model_validate_json(msg.data)
            if entry.seq > self.last:
                self.last = entry.seq
                out.append(entry)
        return out


# -- retries ------------------------------------------------------------------------------------


def is_retryable(exc: BaseException) -> bool:
    """Whether a stream should reconnect after `exc`: dropped connections, timeouts and 5xx
    answers (the server restarting, a proxy in between) are passing; any other answer is final.
    """
    if isinstance(exc, ConnectionFailed):
        return True
    if isinstance(exc, JobcastError):
        return exc.status >= 500
    return isinstance(exc, httpx.TransportError | OSError | TimeoutError)


def backoff(
    initial: float = 0.1, maximum: float = 5.0, factor: float = 2.0, jitter: float = 0.25
) -> Iterator[float]:
    """Delays before successive reconnects: at once, then `initial` growing by `factor` up to
    `maximum`, each shortened by up to `jitter` so clients cut at the same moment spread out.
    """
    yield 0.0
    delay = initial
    while True:
        yield delay * (1.0 - jitter * random.random())
        delay = min(delay * factor, maximum)


class Reconnect:
    """The retry policy of one stream: which failures to retry, how long to wait, when to give up.

    `connected()` after each successful answer (the server is there: the give-up clock restarts);
    `progressed()` when data arrived (the next failure retries at once again); `delay(exc)` after
    a failure, or `delay(None)` after a stream that ended early.
    """

    def __init__(self, url: str, timeout: float | None) -> None:
        self._url = url
        self._timeout = timeout
        self._since = time.monotonic()
        self._delays = backoff()

    def connected(self) -> None:
        self._since = time.monotonic()

    def progressed(self) -> None:
        self._delays = backoff()

    def delay(self, exc: BaseException | None) -> float:
        """Seconds to wait before the next attempt.

        Raises:
            JobcastError: `exc` itself when it is not worth retrying (401, 403, 404, 4xx).
            ConnectionFailed: the server has been out of reach for longer than the timeout.
        """
        if exc is not None and not is_retryable(exc):
            raise exc
        if self._timeout is not None and time.monotonic() - self._since >= self._timeout:
            failure = connection_failed(self._url, exc) if exc is not None else None
            reason = f" ({failure.message})" if failure is not None else ""
            raise ConnectionFailed(
                f"gave up reconnecting to the jobcast server at {self._url} after "
                f"{self._timeout:g}s{reason}"
            ) from exc
        return next(self._delays)
