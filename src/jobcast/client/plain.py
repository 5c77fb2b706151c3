"""A small blocking client on the standard library, for the command line's one-shot requests
(`ls`, `show`, `cancel`, `status`, shell completion): JSON in, plain dicts out.

`Client` answers with models, over httpx; importing those two takes longer than a `jobcast ls`
should take in all. What these commands print needs neither: the JSON the server sent is enough.
Errors are the same `JobcastError` classes, with the same messages, as `Client` raises.
"""

from __future__ import annotations

import http.client
import select
import socket
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlencode, urlsplit

import orjson

from ..errors import ConnectionFailed, JobcastError, error_from_payload
from .endpoint import cannot_reach, lost_connection, no_answer, resolve_token, resolve_url

__all__ = ["DEFAULT_TIMEOUT", "PlainClient"]

#: seconds to connect and to get an answer, as `Client`'s default
DEFAULT_TIMEOUT = 10.0


class PlainClient:
    """One keep-alive connection to a jobcast server; `request` returns the decoded JSON answer.

    Raises (every method): the `JobcastError` the server answered, `ConnectionFailed` when it
    cannot be reached or does not answer within `timeout`.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = resolve_url(url)
        parts = urlsplit(self.url)
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Accept": "application/json", "User-Agent": "jobcast-cli"}
        if (token := resolve_token(token, self.url)) is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        conn: type[http.client.HTTPConnection] = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        try:
            self._conn = conn(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        except ValueError as e:  # a port that is not a number
            raise ConnectionFailed(f"invalid server URL {self.url!r}: {e}") from None

    def __enter__(self) -> PlainClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
        slow: tuple[float, Callable[[], None]] | None = None,
    ) -> Any:
        """Send one request and return its JSON answer (None when it has no body).

        `slow` is (seconds, callback): the callback runs once if no answer has begun by then,
        and the wait for the answer then has no time limit (a cancel waits for the job's end).
        """
        target = self._base + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, target, body=data, headers=headers)
            if slow is not None:
                self._wait_slowly(*slow)
            resp = self._conn.getresponse()
            raw = resp.read()
            if slow is not None and self._conn.sock is not None:
                self._conn.sock.settimeout(self._timeout)
        except (OSError, http.client.HTTPException) as e:
            raise self._failed(e) from None
        if resp.status >= 400:
            raise self._error(resp.status, raw)
        return orjson.loads(raw) if raw else None

    def download(self, path: str, out: BinaryIO, chunk: int = 64 * 1024) -> int:
        """Copy the body of `GET path` into `out` as it comes, never whole in memory; its size.

        Raises: as `request`; a connection lost midway is a `ConnectionFailed` too. What
        writing to `out` raises (a closed pipe) is raised as it is.
        """
        headers = {**self._headers, "Accept": "*/*"}
        size = 0
        try:
            self._conn.request("GET", self._base + path, headers=headers)
            resp = self._conn.getresponse()
            if resp.status >= 400:
                raise self._error(resp.status, resp.read())
            while data := resp.read(chunk):
                try:
                    out.write(data)
                except OSError as e:
                    raise _WriteFailed from e
                size += len(data)
        except _WriteFailed as e:
            self.close()
            raise e.__cause__ from None  # type: ignore[misc]
        except (OSError, http.client.HTTPException) as e:
            raise self._failed(e) from None
        return size

    def _failed(self, e: OSError | http.client.HTTPException) -> ConnectionFailed:
        """The connection closed, and what to tell of `e`: no answer, no server, or lost."""
        self.close()
        if isinstance(e, TimeoutError):
            return ConnectionFailed(no_answer(self.url))
        if isinstance(e, ConnectionRefusedError | socket.gaierror):
            return ConnectionFailed(cannot_reach(self.url))
        return ConnectionFailed(lost_connection(self.url, str(e) or type(e).__name__))

    def _wait_slowly(self, seconds: float, notice: Callable[[], None]) -> None:
        sock = self._conn.sock
        if sock is None:
            return
        ready, _, _ = select.select([sock], [], [], seconds)
        if not ready:
            notice()
            sock.settimeout(None)

    @staticmethod
    def _error(status: int, raw: bytes) -> JobcastError:
        try:
            payload: object = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            payload = None  # a proxy's HTML error page: the status alone says what happened
        return error_from_payload(status, payload)


class _WriteFailed(Exception):
    """Carries what writing a download raised past the handlers of the connection's errors."""
