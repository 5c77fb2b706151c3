"""The `/ws` wire format, sans I/O: client messages parsed into commands, server messages and
events encoded into WebSocket frames.

The connection (api/mux.py) speaks only through a `Codec`, so another profile of the same
protocol (CBOS's `/ws/stream`, with `sessions` for `jobs` and `stream` for output) is another
`Codec` over the same connection logic.

Client messages (JSON text frames; any may carry an `id`, echoed in its answer):
`subscribe {jobs: [id | name | "*"], after?: {job: seq}}`, `unsubscribe {jobs}`,
`send {job, text | b64}`, `interrupt {job}`, `resize {job, cols, rows}`, `signal {job, signal}`,
`cancel {job}`, `get_buffer {job, max_bytes?}`, `list`.

Server messages: `jobs`, `available`, `subscribed`, `unsubscribed`, `buffer`, `<type>_result
{job, success, error?}` (`send_result`, `interrupt_result`, ...), `error {error: {code,
message}}`, and each subscribed job's events as `{"type": "event", "job", "seq", "event", "ts",
"data"}`, `event` being the event's own type (`stdout`, `status`, `complete`, ...).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ..errors import BadRequest, JobcastError
from ..models import Event, Job
from ..protocol import event_dict, ws_frame

__all__ = ["BadMessage", "Codec", "MuxCommand"]

CommandType = Literal[
    "subscribe",
    "unsubscribe",
    "send",
    "interrupt",
    "resize",
    "signal",
    "cancel",
    "get_buffer",
    "list",
]
_TYPES: tuple[str, ...] = CommandType.__args__  # type: ignore[attr-defined]
#: the default and the most of `get_buffer`'s `max_bytes`
BUFFER_BYTES = 100_000
MAX_BUFFER_BYTES = 1 << 20
#: job references in one subscribe or unsubscribe
MAX_REFS = 10_000


class BadMessage(BadRequest):
    """A client message the server cannot act on; `request_id` is its `id`, if it had one."""

    def __init__(self, message: str, request_id: Any = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.request_id, self.kind = request_id, kind


@dataclass(frozen=True, slots=True)
class MuxCommand:
    type: CommandType
    #: the client's own correlation id, echoed in the answer
    id: Any = None
    #: subscribe, unsubscribe: job ids, names, "*"
    jobs: tuple[str, ...] = ()
    after: dict[str, int] = field(default_factory=dict)
    #: every other command's one job
    job: str = ""
    data: bytes = b""
    cols: int = 0
    rows: int = 0
    signal: str = ""
    max_bytes: int = BUFFER_BYTES


def _ref(msg: dict[str, Any], rid: Any, kind: str) -> str:
    job = msg.get("job")
    if not isinstance(job, str) or not job or len(job) > 200:
        raise BadMessage(f"a {kind} message needs `job`: a job's id or name", rid, kind)
    return job


class Codec:
    """The default `/ws` format. `b64`: output events carry their bytes in base64 too;
    `buffer_bytes`: what `get_buffer` sends without a `max_bytes`."""

    #: whether a `"*"` connection of this format may be served by the firehose, whose frames
    #: are built from events alone (a format that names jobs by what `know` told it may not)
    firehose = True

    def __init__(self, *, b64: bool = False, buffer_bytes: int = BUFFER_BYTES) -> None:
        self.b64 = b64
        self.buffer_bytes = min(buffer_bytes, MAX_BUFFER_BYTES)
        #: what its event frames are cached under, on each event
        self.key = "mux64" if b64 else "mux"

    def know(self, job: Job) -> None:
        """The connection resolved `job` (a format naming jobs otherwise than by id keeps it)."""

    # -- client to server ---------------------------------------------------------------------

    def parse(self, raw: str | bytes) -> MuxCommand:
        """A client's message as a command; raise BadMessage saying what is wrong."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise BadMessage(f"message is not valid JSON: {e}") from None
        if not isinstance(msg, dict):
            raise BadMessage("message must be a JSON object with a `type`")
        rid = msg.get("id")
        if rid is not None and not (isinstance(rid, str | int) and len(str(rid)) <= 100):
            raise BadMessage("`id` must be a string or an integer (at most 100 characters)")
        kind = msg.get("type")
        if kind not in _TYPES:
            raise BadMessage(
                f"unknown message type {str(kind)[:50]!r}; expected one of {', '.join(_TYPES)}",
                rid,
            )
        if kind in ("subscribe", "unsubscribe"):
            return self._subscription(kind, msg, rid)
        if kind == "list":
            return MuxCommand("list", rid)
        return self._one_job(kind, msg, rid)

    def _one_job(self, kind: str, msg: dict[str, Any], rid: Any) -> MuxCommand:
        job = _ref(msg, rid, kind)
        if kind == "send":
            return MuxCommand("send", rid, job=job, data=self._input(msg, rid))
        if kind == "resize":
            cols, rows = msg.get("cols"), msg.get("rows")
            if not (
                type(cols) is int and type(rows) is int and 0 < cols <= 1000 and 0 < rows <= 1000
            ):
                raise BadMessage(
                    "a resize message needs integer `cols` and `rows` between 1 and 1000",
                    rid,
                    kind,
                )
            return MuxCommand("resize", rid, job=job, cols=cols, rows=rows)
        if kind == "signal":
            sig = msg.get("signal")
            if not isinstance(sig, str | int) or isinstance(sig, bool):
                raise BadMessage(
                    'a signal message needs `signal`, such as "INT" or "TERM"', rid, kind
                )
            return MuxCommand("signal", rid, job=job, signal=str(sig)[:32])
        if kind == "get_buffer":
            n = msg.get("max_bytes", self.buffer_bytes)
            if type(n) is not int or not 0 < n <= MAX_BUFFER_BYTES:
                raise BadMessage(
                    f"`max_bytes` must be an integer between 1 and {MAX_BUFFER_BYTES}", rid, kind
                )
            return MuxCommand("get_buffer", rid, job=job, max_bytes=n)
        return MuxCommand(kind, rid, job=job)  # type: ignore[arg-type]  # interrupt, cancel

    @staticmethod
    def _input(msg: dict[str, Any], rid: Any) -> bytes:
        if isinstance(msg.get("b64"), str):
            try:
                return base64.b64decode(msg["b64"], validate=True)
            except ValueError:
                raise BadMessage("`b64` is not valid base64", rid, "send") from None
        if not isinstance(msg.get("text"), str):
            raise BadMessage("a send message needs `text` (a string) or `b64`", rid, "send")
        return str(msg["text"]).encode("utf-8", "surrogatepass")

    @staticmethod
    def _subscription(kind: str, msg: dict[str, Any], rid: Any) -> MuxCommand:
        jobs = msg.get("jobs")
        if not (
            isinstance(jobs, list)
            and len(jobs) <= MAX_REFS
            and all(isinstance(j, str) and 0 < len(j) <= 200 for j in jobs)
        ):
            raise BadMessage(
                f'a {kind} message needs `jobs`: a list of job ids or names, or "*" for every '
                f"job, now and to come (at most {MAX_REFS})",
                rid,
                kind,
            )
        after = msg.get("after", {})
        if kind == "unsubscribe" or after is None:
            after = {}
        if not (
            isinstance(after, dict)
            and len(after) <= MAX_REFS
            and all(type(v) is int and v >= 0 for v in after.values())
        ):
            raise BadMessage(
                "`after` must map job ids (or names) to the seq of the last event the client "
                "has, a non-negative integer",
                rid,
                kind,
            )
        return MuxCommand(kind, rid, jobs=tuple(dict.fromkeys(jobs)), after=after)  # type: ignore[arg-type]

    # -- server to client ---------------------------------------------------------------------

    def event(self, ev: Event) -> bytes:
        """One event as a frame, built once and shared by every connection (cached on it)."""
        out = ev.cache.get(self.key)
        if out is None:
            d = event_dict(ev, b64=self.b64)
            body = {"type": "event", "job": ev.job, "seq": ev.seq, "event": d["type"]}
            body["ts"], body["data"] = d["ts"], d["data"]
            out = ev.remember(self.key, ws_frame(orjson.dumps(body)))
        return out

    def message(self, kind: str, **fields: Any) -> bytes:
        return ws_frame(orjson.dumps({"type": kind, **fields}, default=_default))

    def error(self, error: JobcastError, request_id: Any = None, **fields: Any) -> bytes:
        payload = error.to_payload()
        if request_id is not None:
            fields["id"] = request_id
        return self.message("error", **payload, **fields)


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot encode {type(obj).__name__}")
