"""The clients' sans-I/O protocol: settings, requests, and answers turned into results or errors."""

# `Client` and `AsyncClient` only move bytes; every decision about them is made here, or in
# `stream` for resuming and retrying, once.

from __future__ import annotations

import base64
import signal as _signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, TypeVar, cast

import httpx
import orjson
from pydantic import ValidationError

from ..errors import (
    ConnectionFailed,
    JobcastError,
    JobNotFound,
    ValidationFailed,
    error_from_payload,
)
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
    TraceList,
)
from .endpoint import (
    DEFAULT_URL,
    cannot_reach,
    job_path,
    lost_connection,
    no_answer,
    quote_ref,
    resolve_token,
    resolve_url,
)

if TYPE_CHECKING:
    # for annotations only: `stream` imports this module
    from .stream import EventCursor, TraceCursor

__all__ = [
    "API",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "RECONNECT_TIMEOUT",
    "STREAM_READ_TIMEOUT",
    "WS_MAX_SIZE",
    "Call",
    "ClientConfig",
    "LogStream",
    "ServerStats",
    "ServerStatus",
    "connection_failed",
    "template_spec",
    "error_from_body",
    "event_from_json",
    "event_from_ws",
    "make_spec",
    "quote_ref",
    "signal_name",
    "socket_closed",
    "ws_message",
]

#: seconds to connect and, outside streams, to get an answer
DEFAULT_TIMEOUT = 10.0
#: a stream silent this long is presumed dead and reconnected; the server's heartbeat comes
#: every 15 s by default, so only a dead connection (or a quiet raw log) stays silent this long
STREAM_READ_TIMEOUT = 60.0
#: how long a stream keeps trying to reach the server before it gives up
RECONNECT_TIMEOUT = 120.0
#: the largest WebSocket message accepted: the server batches output into events of up to a few
#: hundred KiB, so this only guards against a runaway peer
WS_MAX_SIZE = 16 * 1024 * 1024

LogStream = Literal["stdout", "stderr", "all"]
T = TypeVar("T")


class ServerStatus(TypedDict):
    """`GET /status`."""

    version: str
    uptime: float
    jobs: dict[str, int]
    disk: dict[str, int]


class ServerStats(TypedDict):
    """`GET /stats`."""

    clients: dict[str, int]
    per_job: dict[str, int]
    events_sent: int
    bytes_sent: int
    stalled_disconnects: int
    #: per second over the last `window_seconds`: `events_per_second`, `bytes_per_second`
    rates: dict[str, float]
    #: each followed job's `clients`, `events_per_second`, `bytes_per_second`
    jobs: dict[str, dict[str, float]]


# -- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the server is and how to talk to it; built once, in the client's constructor."""

    url: str
    token: str | None
    timeout: float
    reconnect_timeout: float | None

    @classmethod
    def build(
        cls,
        url: str | None,
        token: str | None,
        timeout: float,
        reconnect_timeout: float | None,
    ) -> ClientConfig:
        """Arguments win over `JOBCAST_URL` / `JOBCAST_TOKEN`, which win over the defaults (for
        the token: a local server's token file, `endpoint.resolve_token`)."""
        url = resolve_url(url)
        return cls(url, resolve_token(token, url), timeout, reconnect_timeout)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": "jobcast-client", **self.auth_headers()}

    def http_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout)

    def slow_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, read=None)

    def stream_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, read=max(STREAM_READ_TIMEOUT, self.timeout))

    def ws_url(self, path: str, params: Mapping[str, str]) -> str:
        scheme, rest = self.url.split("://", 1)
        ws_scheme = "wss" if scheme == "https" else "ws"
        return str(httpx.URL(f"{ws_scheme}://{rest}{path}", params=dict(params)))

    def job_socket(self, ref: str, after: int, raw: bool) -> tuple[str, dict[str, Any]]:
        """The URL of a job's WebSocket and the options of websockets' `connect` (either API)."""
        params = {"after": str(after), "format": "raw" if raw else "json", "encoding": "base64"}
        options = {
            "additional_headers": self.auth_headers(),
            "open_timeout": self.timeout,
            "compression": None,
            "max_size": WS_MAX_SIZE,
        }
        return self.ws_url(f"/jobs/{quote_ref(ref)}/ws", params), options


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request, and how to turn its answer into a result.

    Built by the functions in `calls`; sent by `Client` or `AsyncClient`, which then call `result`.
    """

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: a raw body (sent instead of `json`, with its Content-Type in `headers`)
    content: bytes | None = None
    #: the server answers once a long job is done (a big prune): no read timeout
    slow: bool = False

    def result(self, status: int, body: bytes) -> T:
        """Parse a successful answer.

        Raises:
            JobcastError: the subclass the server's `{"error": {"code"}}` names.
        """
        if status >= 400:
            raise error_from_body(status, body)
        return self.parse(body)


def error_from_body(status: int, body: bytes | bytearray) -> JobcastError:
    try:
        payload: object = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None  # a proxy's HTML error page: the status alone says what happened
    return error_from_payload(status, payload)


def socket_failed(url: str, exc: Exception) -> JobcastError:
    """What opening a WebSocket raised, as the error the server answered or a `ConnectionFailed`."""
    from websockets.exceptions import InvalidStatus  # loaded already: a socket was opened

    if isinstance(exc, InvalidStatus):
        return error_from_body(exc.response.status_code, exc.response.body or b"")
    return connection_failed(url, exc)


def socket_closed(url: str, exc: Exception) -> JobcastError:
    """A WebSocket the server closed on an error (4401, 4403, 4404: the HTTP status + 4000) as
    that error; any other close as a `ConnectionFailed`."""
    rcvd = getattr(exc, "rcvd", None)  # websockets' ConnectionClosed: the close frame received
    code = getattr(rcvd, "code", 0)
    if code in (4401, 4403, 4404):
        err = error_from_payload(code - 4000, {"error": {"message": getattr(rcvd, "reason", "")}})
        if code == 4404:
            err = JobNotFound(err.message)
        return err
    return connection_failed(url, exc)


def connection_failed(url: str, exc: BaseException) -> ConnectionFailed:
    """A `ConnectionFailed` whose message says what went wrong and what to do about it."""
    if isinstance(exc, ConnectionFailed):
        return exc
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError):
        return ConnectionFailed(cannot_reach(url))
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ConnectionFailed(no_answer(url))
    return ConnectionFailed(lost_connection(url, str(exc) or type(exc).__name__))


def _json(body: bytes) -> Any:
    return orjson.loads(body)


def _none(body: bytes) -> None:
    return None


def _bytes(body: bytes) -> bytes:
    return body


def _written(body: bytes) -> int:
    return int(orjson.loads(body).get("written", 0))


def _signal_sent(body: bytes) -> str:
    return str(orjson.loads(body).get("signal", ""))


def make_spec(command: str | Sequence[str], **options: Any) -> JobSpec:
    """A `JobSpec` from a shell string or an argv list, validated here rather than by the server.

    Raises:
        ValidationFailed: a field is wrong; the message says which and why.
    """
    key = "command" if isinstance(command, str) else "argv"
    value = command if isinstance(command, str) else list(command)
    return _spec({key: value}, options)


def template_spec(template: str, args: Mapping[str, str | int | bool], **options: Any) -> JobSpec:
    """A `JobSpec` that runs the server's template `template` with `args`.

    Raises:
        ValidationFailed: a field is wrong; the arguments themselves are checked by the server.
    """
    return _spec({"template": template, "args": dict(args)}, options)


def _spec(command: dict[str, Any], options: dict[str, Any]) -> JobSpec:
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return JobSpec.model_validate({**command, **given})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in e.errors()
        )
        raise ValidationFailed(f"invalid job: {problems}") from None


def signal_name(sig: str | int) -> str:
    """`"INT"`, `"sigint"`, `"SIGINT"`, `2` and `signal.SIGINT` all give `"INT"`."""
    if isinstance(sig, int):
        return _signal.Signals(sig).name.removeprefix("SIG")
    return sig.strip().upper().removeprefix("SIG")


class API:
    """The requests of the HTTP API, one builder per endpoint: `API.job(ref)` is a `Call[Job]`."""

    @staticmethod
    def submit(spec: JobSpec) -> Call[Job]:
        body = spec.model_dump(mode="json", exclude_none=True)
        return Call("POST", "/jobs", Job.model_validate_json, json=body)

    @staticmethod
    def jobs(
        status: JobStatus | str | None,
        labels: Mapping[str, str] | None,
        name: str | None,
        limit: int | None,
        cursor: str | None,
        kind: JobKind | None = None,
    ) -> Call[JobList]:
        params = [("label", f"{k}={v}") for k, v in (labels or {}).items()]
        for key, value in (
            ("status", status),
            ("name", name),
            ("kind", kind),
            ("limit", limit),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((key, str(value)))
        return Call("GET", "/jobs", JobList.model_validate_json, params=tuple(params))

    @staticmethod
    def job(ref: str) -> Call[Job]:
        return Call("GET", job_path(ref), Job.model_validate_json)

    @staticmethod
    def cancel(ref: str) -> Call[Job]:
        return Call("POST", job_path(ref, "/cancel"), Job.model_validate_json)

    @staticmethod
    def send(ref: str, data: str | bytes, eof: bool) -> Call[int]:
        body: dict[str, Any] = (
            {"data": data} if isinstance(data, str) else {"b64": base64.b64encode(data).decode()}
        )
        if eof:
            body["eof"] = True
        return Call("POST", job_path(ref, "/input"), _written, json=body)

    @staticmethod
    def signal(ref: str, sig: str | int) -> Call[str]:
        body = {"signal": signal_name(sig)}
        return Call("POST", job_path(ref, "/signal"), _signal_sent, json=body)

    @staticmethod
    def resize(ref: str, cols: int, rows: int) -> Call[None]:
        body = {"cols": cols, "rows": rows}
        return Call("POST", job_path(ref, "/resize"), _none, json=body)

    @staticmethod
    def delete(ref: str) -> Call[None]:
        return Call("DELETE", job_path(ref), _none)

    @staticmethod
    def prune(
        older_than: float | None, max_jobs: int | None, max_bytes: int | None, dry_run: bool
    ) -> Call[PruneResult]:
        rules = {"older_than": older_than, "max_jobs": max_jobs, "max_bytes": max_bytes}
        body: dict[str, Any] = {k: v for k, v in rules.items() if v is not None}
        if dry_run:
            body["dry_run"] = True
        return Call("POST", "/prune", PruneResult.model_validate_json, json=body, slow=True)

    @staticmethod
    def log(
        ref: str, stream: LogStream, offset: int, end: int | None = None, follow: bool = False
    ) -> Call[bytes]:
        params: list[tuple[str, str]] = [("stream", stream)]
        headers = {"Accept": "application/octet-stream"}
        if end is not None:
            headers["Range"] = f"bytes={offset}-{end - 1}"
        elif offset:
            params.append(("offset", str(offset)))
        if follow:
            params.append(("follow", "1"))
        return Call("GET", job_path(ref, "/log"), _bytes, params=tuple(params), headers=headers)

    @staticmethod
    def lines(ref: str, after_line: int, stream: LogStream, limit: int | None) -> Call[Any]:
        params = [("after_line", str(after_line)), ("stream", stream)]
        if limit is not None:
            params.append(("limit", str(limit)))
        return Call("GET", job_path(ref, "/lines"), _json, params=tuple(params))

    @staticmethod
    def events(ref: str, cursor: EventCursor) -> Call[None]:
        params, headers = cursor.resume()
        params.append(("encoding", "base64"))
        headers["Accept"] = "text/event-stream"
        return Call("GET", job_path(ref, "/events"), _none, params=tuple(params), headers=headers)

    @staticmethod
    def firehose(cursor: EventCursor, output: bool) -> Call[None]:
        params, headers = cursor.resume()
        headers["Accept"] = "text/event-stream"
        if output:
            params += [("output", "1"), ("encoding", "base64")]
        return Call("GET", "/stream", _none, params=tuple(params), headers=headers)

    @staticmethod
    def paste(data: str | bytes) -> Call[Paste]:
        if isinstance(data, str):
            return Call("POST", "/pastes", Paste.model_validate_json, json={"text": data})
        headers = {"Content-Type": "application/octet-stream"}
        return Call("POST", "/pastes", Paste.model_validate_json, headers=headers, content=data)

    @staticmethod
    def get_paste(ref: str) -> Call[bytes]:
        digest = ref.removeprefix("ctx://paste/")
        return Call("GET", f"/pastes/{quote_ref(digest)}", _bytes)

    @staticmethod
    def trace(
        limit: int | None, ops: Sequence[str], job: str | None, after: int | None
    ) -> Call[list[TraceEntry]]:
        params = [("op", op) for op in ops]
        for key, value in (("limit", limit), ("job", job), ("after", after)):
            if value is not None:
                params.append((key, str(value)))
        return Call(
            "GET",
            "/trace",
            lambda body: TraceList.model_validate_json(body).entries,
            params=tuple(params),
        )

    @staticmethod
    def trace_stream(cursor: TraceCursor) -> Call[None]:
        params, headers = cursor.resume()
        headers["Accept"] = "text/event-stream"
        return Call("GET", "/stream", _none, params=tuple(params), headers=headers)

    @staticmethod
    def chat(message: str, context: Sequence[str]) -> Call[Job]:
        body = {"message": message, "context": list(context)}
        return Call("POST", "/chat", Job.model_validate_json, json=body)

    @staticmethod
    def direct(command: str, context: Sequence[str]) -> Call[Job]:
        body = {"command": command, "context": list(context)}
        return Call("POST", "/direct", Job.model_validate_json, json=body)

    @staticmethod
    def templates() -> Call[dict[str, Any]]:
        return Call("GET", "/templates", lambda body: cast(dict[str, Any], _json(body)))

    @staticmethod
    def status() -> Call[ServerStatus]:
        return Call("GET", "/status", lambda body: cast(ServerStatus, _json(body)))

    @staticmethod
    def stats() -> Call[ServerStats]:
        return Call("GET", "/stats", lambda body: cast(ServerStats, _json(body)))


def ws_message(kind: str, **fields: Any) -> str:
    """A client message on `/jobs/{id}/ws`; input bytes travel as base64 so they arrive exact."""
    data = fields.pop("data", None)
    if isinstance(data, bytes):
        fields["b64"] = base64.b64encode(data).decode()
    elif data is not None:
        fields["data"] = data
    return orjson.dumps({"type": kind, **fields}).decode()


# -- events -------------------------------------------------------------------------------------


def event_from_json(obj: Mapping[str, Any], gid: int = 0) -> Event:
    """An `Event` from its JSON form. Output events get `raw`, from `data["b64"]` when present
    (removed from `data`, since `raw` holds the same bytes), else from the text.

    Raises:
        ValueError: an unknown event type or a malformed event.
    """
    kind = EventType(obj["type"])
    data = dict(obj.get("data") or {})
    raw: bytes | None = None
    if kind in (EventType.STDOUT, EventType.STDERR):
        b64 = data.pop("b64", None)
        raw = base64.b64decode(b64) if b64 is not None else str(data.get("text", "")).encode()
    return Event(
        seq=int(obj["seq"]),
        job=str(obj["job"]),
        type=kind,
        ts=float(obj["ts"]),
        data=data,
        raw=raw,
        gid=gid,
    )


def event_from_ws(message: str | bytes) -> Event | None:
    """The event in a frame of `/jobs/{id}/ws`: None for raw output and for types this client
    does not know.

    Raises:
        JobcastError: the frame is the server's answer to a message that failed (`NoStdin`, ...).
    """
    if isinstance(message, bytes):
        return None
    obj = orjson.loads(message)
    if "seq" not in obj and isinstance(obj.get("error"), dict):
        err = error_from_payload(0, obj)
        err.status = type(err).status  # no HTTP answer here: the class says what it would be
        raise err
    try:
        return event_from_json(obj)
    except ValueError:
        return None
