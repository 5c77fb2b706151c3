"""The `cbos` profile (seed 002, "CBOS Streaming Transport Layer"): `WS ws/stream`.

A session is a job or a source (a watched typescript, `INFRA.typescript` -> `INFRA`), named by
its name (its id if it has none). The connection is jobcast's own /ws (api/mux.py: cursors per
job, fans, the store), speaking CBOS's messages through `CbosCodec`:

client: `subscribe`/`unsubscribe {sessions: [name | "*"]}`, `send {session, text}` (a line: the
text and Enter), `interrupt {session}`, `get_buffer {session}` (the last `buffer_bytes`, which
`CBOS_STREAM_MAX_BUFFER_SIZE` sets), `list_sessions`.
server: `sessions {sessions: [{slug, id, status, kind}]}` and `available_streams {sessions:
[slug]}` on connecting and for `list_sessions`, `subscribed {sessions}`, `stream {session, data,
ts}` for each output event (nothing for the others: CBOS had none), `buffer {session, data}`,
`send_result`/`interrupt_result {session, success}` (and `error` when it failed), and `error
{error, code}` for a message it cannot act on.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from aiohttp import web

from ...config import Scope
from ...errors import JobcastError
from ...models import Event, EventType, Job
from ...protocol import ws_frame
from ..auth import Rule
from ..mux import serve
from ..muxcodec import BadMessage, Codec, MuxCommand
from ..state import STATE
from . import Profile, Route

__all__ = ["PROFILE", "CbosCodec"]

KIND = "cbos"
#: names a connection remembers (those of the jobs it followed or acted on)
_NAMES = 10_000
#: CBOS's message types and the /ws ones they are
_TYPES = {
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
    "send": "send",
    "interrupt": "interrupt",
    "get_buffer": "get_buffer",
    "list_sessions": "list",
}


class CbosCodec(Codec):
    """/ws's commands and answers in CBOS's words: `sessions` for `jobs`, `session` (a name) for
    `job`, `stream` for output events."""

    #: frames name a session by what `know` learnt, which the firehose has not
    firehose = False

    def __init__(self, *, buffer_bytes: int) -> None:
        super().__init__(buffer_bytes=buffer_bytes)
        self.key = KIND
        self._names: OrderedDict[str, str] = OrderedDict()

    def know(self, job: Job) -> None:
        self._names[job.id] = job.name or job.id
        self._names.move_to_end(job.id)
        if len(self._names) > _NAMES:
            self._names.popitem(last=False)

    def _name(self, job_id: str) -> str:
        return self._names.get(job_id, job_id)

    # -- client to server ---------------------------------------------------------------------

    def parse(self, raw: str | bytes) -> MuxCommand:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise BadMessage(f"message is not valid JSON: {e}") from None
        if not isinstance(msg, dict):
            raise BadMessage("message must be a JSON object with a `type`")
        kind = msg.get("type")
        if kind not in _TYPES:
            raise BadMessage(
                f"unknown message type {str(kind)[:50]!r}; expected one of {', '.join(_TYPES)}"
            )
        mine: dict[str, Any] = {"type": _TYPES[kind]}
        if kind in ("subscribe", "unsubscribe"):
            sessions = msg.get("sessions")
            if not isinstance(sessions, list):
                raise BadMessage(
                    f'a {kind} message needs `sessions`: a list of session names, or ["*"]'
                )
            mine["jobs"] = sessions
        elif kind != "list_sessions":
            session = msg.get("session")
            if not isinstance(session, str) or not session:
                raise BadMessage(f"a {kind} message needs `session`: a session's name")
            mine["job"] = session
            if kind == "send":
                text = msg.get("text")
                if not isinstance(text, str):
                    raise BadMessage("a send message needs `text`: a string")
                mine["text"] = text + "\n"  # what CBOS typed: the text, then Enter
            if kind == "get_buffer" and "max_bytes" in msg:
                mine["max_bytes"] = msg["max_bytes"]
        return super().parse(orjson.dumps(mine))

    # -- server to client ---------------------------------------------------------------------

    def event(self, ev: Event) -> bytes:
        out = ev.cache.get(KIND)
        if out is None:
            if ev.type in (EventType.STDOUT, EventType.STDERR):
                text = (ev.raw or b"").decode("utf-8", "replace")
                body = {"type": "stream", "session": self._name(ev.job), "data": text, "ts": ev.ts}
                out = ev.remember(KIND, ws_frame(orjson.dumps(body)))
            else:
                out = b""
        return out

    def message(self, kind: str, **fields: Any) -> bytes:
        rid = fields.get("id")
        body: dict[str, Any]
        if kind == "jobs":
            sessions = [
                {"slug": j.name or j.id, "id": j.id, "status": j.status.value, "kind": j.kind}
                for j in fields["jobs"]
            ]
            body = {"type": "sessions", "sessions": sessions}
        elif kind == "available":
            body = {
                "type": "available_streams",
                "sessions": [j["name"] or j["id"] for j in fields["jobs"]],
            }
        elif kind in ("subscribed", "unsubscribed"):
            names = [self._name(j) for j in fields["jobs"]]
            if fields.get("all") and kind == "subscribed":
                names.insert(0, "*")
            body = {"type": kind, "sessions": names}
        elif kind == "buffer":
            body = {"type": "buffer", "session": self._name(fields["job"]), "data": fields["data"]}
        elif kind.endswith("_result"):
            body = {
                "type": kind,
                "session": self._name(fields["job"]),
                "success": fields["success"],
            }
            if not fields["success"]:
                body["error"] = fields.get("error", {}).get("message")
        else:
            body = {"type": kind, **fields}
        if rid is not None:
            body["id"] = rid
        return ws_frame(orjson.dumps(body))

    def error(self, error: JobcastError, request_id: Any = None, **fields: Any) -> bytes:
        body: dict[str, Any] = {"type": "error", "error": error.message, "code": error.code}
        return ws_frame(orjson.dumps(body))


async def stream(request: web.Request) -> web.StreamResponse:
    settings = request.app[STATE].settings
    return await serve(request, CbosCodec(buffer_bytes=settings.buffer_bytes))


def _error(status: int, code: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": text, "code": code}


PROFILE = Profile(
    name="cbos",
    title="CBOS streaming transport",
    seed="002_1dc131c4fd9a5d7f.txt",
    routes=(Route("GET", "/ws/stream", stream, Rule(Scope.READ, in_query=True, socket=True)),),
    error=_error,
)
