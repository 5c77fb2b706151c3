"""Sans-I/O wire formats shared by server and clients: event JSON, SSE frames, WebSocket frames and
messages. Bytes in, events out; nothing here touches a socket.

An event's encodings are cached on the event, so the server builds each once and sends the same
bytes object to every client.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .errors import BadRequest
from .models import OUTPUT_EVENTS, RECORDED_INPUT, Event

__all__ = [
    "PROTOCOL_VERSION",
    "SSEMessage",
    "SSEParser",
    "WSCommand",
    "event_dict",
    "event_json",
    "parse_ws_command",
    "sse_comment",
    "sse_frame",
    "ws_frame",
]

PROTOCOL_VERSION = 1


def event_dict(ev: Event, *, b64: bool = False) -> dict[str, Any]:
    """The event as every stream sends it (SSE, WebSocket, /ws, the firehose, /lines)."""
    data = ev.data
    if ev.type in OUTPUT_EVENTS and ev.raw is not None:
        data = {**data, "text": ev.raw.decode("utf-8", "replace")}
        if b64:
            data["b64"] = base64.b64encode(ev.raw).decode("ascii")
    elif RECORDED_INPUT in data:
        # What was typed (a password, say) is for the recording of those who may drive the job;
        # every watcher of a stream sees its length only.
        data = {k: v for k, v in data.items() if k != RECORDED_INPUT}
    return {"seq": ev.seq, "job": ev.job, "type": ev.type.value, "ts": ev.ts, "data": data}


def event_json(ev: Event, *, b64: bool = False) -> bytes:
    """The event as JSON. Not cached: only the frames built from it are, which halves what the
    store's in-memory tail holds for each event."""
    return orjson.dumps(event_dict(ev, b64=b64))


def sse_frame(ev: Event, *, b64: bool = False, firehose: bool = False) -> bytes:
    """`id:` is the job's seq, or the global position `gid` on the firehose."""
    key = ("sse64" if b64 else "sse") + ("g" if firehose else "")
    out = ev.cache.get(key)
    if out is None:
        ident = ev.gid if firehose else ev.seq
        # orjson never emits a raw newline, so the JSON always fits on one `data:` line.
        out = b"id: %d\nevent: %s\ndata: %s\n\n" % (
            ident,
            ev.type.value.encode(),
            event_json(ev, b64=b64),
        )
        ev.remember(key, out)
    return out


def sse_comment(text: str) -> bytes:
    return b": " + text.replace("\n", " ").encode() + b"\n\n"


def ws_frame(payload: bytes, *, binary: bool = False) -> bytes:
    """One unmasked server-to-client WebSocket frame (FIN set), the same bytes for every client."""
    head = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", head, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


def ws_event_frame(ev: Event, *, b64: bool = False) -> bytes:
    key = "ws64" if b64 else "ws"
    out = ev.cache.get(key)
    if out is None:
        out = ev.remember(key, ws_frame(event_json(ev, b64=b64)))
    return out


@dataclass(frozen=True, slots=True)
class SSEMessage:
    event: str
    data: str
    id: str | None


class SSEParser:
    """Incremental parser of a `text/event-stream` body: feed bytes, get complete messages."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        # Only the new chunk is searched, and a long line is joined once: a 1 MiB event arriving in
        # 64 KiB pieces costs O(size), not O(size^2).
        out: list[SSEMessage] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                if start < len(chunk):
                    self._pending.append(chunk[start:])
                return out
            line = chunk[start:nl]
            if self._pending:
                self._pending.append(line)
                line = b"".join(self._pending)
                self._pending = []
            start = nl + 1
            msg = self._line(line.rstrip(b"\r").decode("utf-8", "replace"))
            if msg is not None:
                out.append(msg)

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data and self._id is None:
                self._event = ""
                return None
            msg = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
            self._event, self._data, self._id = "", [], None
            return msg if msg.data or msg.event != "message" else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


WSCommandType = Literal["input", "resize", "signal", "cancel", "interrupt"]


@dataclass(frozen=True, slots=True)
class WSCommand:
    type: WSCommandType
    data: bytes = b""
    cols: int = 0
    rows: int = 0
    signal: str = ""


def parse_ws_command(raw: str | bytes) -> WSCommand:
    """Parse a client's JSON message on `/jobs/{id}/ws`; raise BadRequest saying what is wrong.

    `{"type": "input", "data": "text"}` (or `"b64": "..."`), `{"type": "resize", "cols": 80,
    "rows": 24}`, `{"type": "signal", "signal": "INT"}`, `{"type": "interrupt"}` (Ctrl-C as at
    the terminal), `{"type": "cancel"}`.
    """
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"message is not valid JSON: {e}") from None
    if not isinstance(msg, dict):
        raise BadRequest("message must be a JSON object with a `type`")
    kind = msg.get("type")
    if kind == "input":
        if isinstance(msg.get("b64"), str):
            try:
                return WSCommand("input", data=base64.b64decode(msg["b64"], validate=True))
            except ValueError:
                raise BadRequest("`b64` is not valid base64") from None
        if not isinstance(msg.get("data"), str):
            raise BadRequest("an input message needs `data` (a string) or `b64`")
        return WSCommand("input", data=msg["data"].encode())
    if kind == "resize":
        cols, rows = msg.get("cols"), msg.get("rows")
        if not (
            isinstance(cols, int)
            and isinstance(rows, int)
            and 0 < cols <= 1000
            and 0 < rows <= 1000
        ):
            raise BadRequest("a resize message needs integer `cols` and `rows` between 1 and 1000")
        return WSCommand("resize", cols=cols, rows=rows)
    if kind == "signal":
        if not isinstance(msg.get("signal"), str):
            raise BadRequest('a signal message needs `signal`, such as "INT" or "TERM"')
        return WSCommand("signal", signal=msg["signal"])
    if kind == "cancel":
        return WSCommand("cancel")
    if kind == "interrupt":
        return WSCommand("interrupt")
    raise BadRequest(
        f"unknown message type {kind!r}; expected input, resize, signal, interrupt or cancel"
    )
