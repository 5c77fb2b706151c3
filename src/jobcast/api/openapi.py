"""/openapi.json, generated from the pydantic models (ui.py serves /docs, the page that renders it).

Every route of the router is described here with the parameters and headers its handler reads and
the statuses it can answer; tests/api/test_openapi.py holds the two side by side, and runs
schemathesis against a real server to hold the responses to these schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from ..models import (
    JOB_KINDS,
    ChatRequest,
    DirectRequest,
    EventType,
    InputRequest,
    Job,
    JobList,
    JobSpec,
    JobStatus,
    Paste,
    PasteRequest,
    PruneRequest,
    PruneResult,
    ResizeRequest,
    SignalRequest,
    TraceList,
)
from ..trace import OPS
from .auth import rule_for
from .http import MAX_INT, json_response

__all__ = ["routes", "spec"]

routes = web.RouteTableDef()

Schema = dict[str, Any]

#: request bodies validated as they come in, and responses as they are dumped
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    *(
        (m, "validation")
        for m in (
            JobSpec,
            ChatRequest,
            DirectRequest,
            InputRequest,
            SignalRequest,
            ResizeRequest,
            PruneRequest,
            PasteRequest,
        )
    ),
    *((m, "serialization") for m in (Job, JobList, PruneResult, Paste, TraceList)),
]

#: the shape of every error (errors.py): a handler's, the guard's, aiohttp's routing's
_ERROR: Schema = {
    "type": "object",
    "description": "Every error answer; `code` is stable (see jobcast.errors), `message` says what to do.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "rule": {"type": "string", "description": "The policy rule that refused it"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}

_INT: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_INT}

#: the wire shape of an event (protocol.event_dict): an SSE message's `data`, a WebSocket text frame
_EVENT: Schema = {
    "type": "object",
    "description": "One entry of a job's event log. Output events' `data` has `text` (and `b64` "
    "with encoding=base64); `complete`'s has the status, exit code and byte counts.",
    "properties": {
        "seq": _INT,
        "job": {"type": "string"},
        "type": {"type": "string", "enum": list(EventType)},
        "ts": {"type": "number"},
        "data": {"type": "object"},
    },
    "required": ["seq", "job", "type", "ts", "data"],
}

_COUNT: Schema = {"type": "integer", "minimum": 0}

#: one line of the line view (api/lines.py)
_LINE: Schema = {
    "type": "object",
    "description": "A complete line: its text (final form, escapes removed), its number (one "
    "sequence per job across both streams) and its stream.",
    "properties": {
        "line": {"type": "string"},
        "line_no": {"type": "integer", "minimum": 1},
        "stream": {"type": "string", "enum": ["stdout", "stderr"]},
        "truncated": {"type": "boolean", "description": "The line was cut at 1 MiB"},
    },
    "required": ["line", "line_no", "stream"],
}
_LINES: Schema = {
    "type": "object",
    "properties": {
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
        "last_line": {"type": "integer", "minimum": 0, "description": "Pass as `after_line` next"},
        "complete": {"type": "boolean", "description": "The job has ended and no line is left"},
    },
    "required": ["lines", "last_line", "complete"],
}
_DISK = ("data_dir_bytes", "db_bytes", "db_free_bytes", "wal_bytes", "output_bytes")
_STATUS: Schema = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "protocol": {"type": "integer"},
        "uptime": {"type": "number", "description": "Seconds since the server started."},
        "store": {"type": "string"},
        "jobs": {
            "type": "object",
            "properties": {"queued": _COUNT, "running": _COUNT},
            "required": ["queued", "running"],
        },
        "disk": {
            "type": "object",
            "description": "Bytes on disk: the whole data dir; the SQLite file, its free pages "
            "(reused, or given back by the incremental vacuum after deletes) and its "
            "write-ahead log; the jobs' output files.",
            "properties": {k: _COUNT for k in _DISK},
            "required": list(_DISK),
        },
    },
    "required": ["version", "protocol", "uptime", "store", "jobs", "disk"],
}
_STATS: Schema = {
    "type": "object",
    "properties": {
        "clients": {
            "type": "object",
            "description": "Streaming clients connected now, in total and by transport; "
            "`mux_firehose`: the `/ws` clients among them that follow every job at the live "
            "end, served by one cursor for all; `compat`: the drop-in profiles' streams.",
            "properties": {
                k: _COUNT
                for k in ("total", "sse", "ws", "log", "stream", "mux", "mux_firehose", "compat")
            },
            "required": ["total", "sse", "ws", "log", "stream", "mux", "mux_firehose", "compat"],
        },
        "per_job": {"type": "object", "additionalProperties": _COUNT},
        "events_sent": _COUNT,
        "bytes_sent": _COUNT,
        "stalled_disconnects": _COUNT,
        "rates": {
            "type": "object",
            "description": "Events and bytes sent per second over the last `window_seconds` "
            "(up to 10).",
            "properties": {
                k: {"type": "number", "minimum": 0}
                for k in ("window_seconds", "events_per_second", "bytes_per_second")
            },
            "required": ["window_seconds", "events_per_second", "bytes_per_second"],
        },
        "jobs": {
            "type": "object",
            "description": "Each followed job: its clients, and what they were sent per second "
            "over the same window.",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "clients": _COUNT,
                    "events_per_second": {"type": "number", "minimum": 0},
                    "bytes_per_second": {"type": "number", "minimum": 0},
                },
                "required": ["clients", "events_per_second", "bytes_per_second"],
            },
        },
        "tasks": {**_COUNT, "description": "The server's asyncio tasks now."},
        "loop_lag_ms": {
            "type": "object",
            "description": "How late the event loop ran a 50 ms timer over the last minute (or "
            "`lag_seconds`), in ms (a stall counts at every tick it covered).",
            "properties": {k: {"type": "number", "minimum": 0} for k in ("p50", "p99", "max")},
            "required": ["p50", "p99", "max"],
        },
    },
    "required": [
        "clients",
        "per_job",
        "events_sent",
        "bytes_sent",
        "stalled_disconnects",
        "rates",
        "jobs",
        "tasks",
        "loop_lag_ms",
    ],
}

_TEMPLATES: Schema = {
    "type": "object",
    "description": "The policy's mode and its templates; `schema` is the JSON Schema of a "
    "template's `args` (a form is built from it).",
    "properties": {
        "mode": {"type": "string", "enum": ["safe", "expert"]},
        "templates": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": ["string", "null"]},
                    "command": {"type": "array", "items": {"type": "string"}},
                    "pty": {"type": "boolean"},
                    "timeout": {"type": ["number", "null"]},
                    "schema": {"type": "object"},
                },
                "required": ["name", "description", "command", "pty", "timeout", "schema"],
            },
        },
    },
    "required": ["mode", "templates"],
}

_WHOAMI: Schema = {
    "type": "object",
    "description": "Who the token is; `local` with every scope when auth is off.",
    "properties": {
        "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "auth": {"type": "boolean", "description": "Whether the server asks for tokens."},
        "mode": {"type": "string", "enum": ["safe", "expert"]},
        "raw_commands": {
            "type": "boolean",
            "description": "The policy allows raw commands and the token has `exec`.",
        },
        "control": {"type": "boolean", "description": "The token may drive and cancel jobs."},
    },
    "required": ["name", "scopes", "labels", "auth", "mode", "raw_commands", "control"],
}

#: what each error status means here; every operation lists those its handler can answer
_ERRORS = {
    400: "Bad input; the message names the parameter or field",
    401: "No token, or not a valid one (`WWW-Authenticate: Bearer`)",
    403: "The token lacks the scope the operation needs (the message names it), or `Host` or "
    "`Origin` not allowed (settings allowed_hosts, allowed_origins), or the policy refuses the "
    "job (`code` policy_denied, `rule` names the rule)",
    404: "No job with this id or name (or no such paste)",
    409: "The job is not in a state that allows this",
    413: "Request body too large",
    415: "`Content-Type` not accepted",
    416: "Range or offset past the end of the output; `Content-Range: bytes */SIZE`",
    422: "The body is JSON but not valid; the message names the field (or template argument)",
    429: "A limit of the policy is reached (queue length, jobs per token); see `Retry-After`",
    503: "The server is shutting down",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _text(media: str) -> Schema:
    fmt = {"format": "binary"} if media == "application/octet-stream" else {}
    return {media: {"schema": {"type": "string", **fmt}}}


def _param(name: str, where: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _enum(*values: str, default: bool = True) -> Schema:
    """A string that is one of `values`, the first the default unless `default` is False."""
    return {"type": "string", "enum": list(values), **({"default": values[0]} if default else {})}


_BOOL: Schema = {"type": "boolean", "default": False}


def _object(**properties: Schema) -> Schema:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _ok(content: Schema | None = None, headers: Schema | None = None) -> Schema:
    response: Schema = {"description": "OK"}
    if content:
        response["content"] = content
    if headers:
        response["headers"] = headers
    return response


_CONTENT_RANGE = {"Content-Range": {"schema": {"type": "string"}, "required": True}}


def _op(
    operation_id: str,
    summary: str,
    ok: dict[int, Schema],
    errors: tuple[int, ...],
    params: list[Schema] | None = None,
    body: Schema | None = None,
) -> Schema:
    """An operation, its id the name of its handler: `ok` its success responses, `errors` the
    error statuses the handler answers (403 always: the guard's), `body` its content by media type."""
    responses = {str(status): response for status, response in ok.items()}
    for status in sorted({403, *errors}):
        error = {"description": _ERRORS[status], "content": _json(_ref("Error"))}
        responses[str(status)] = error | ({"headers": _CONTENT_RANGE} if status == 416 else {})
    op: Schema = {"operationId": operation_id, "summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _with_head(get: Schema) -> Schema:
    """GET and the HEAD aiohttp answers beside it: the same headers and statuses, no body."""
    head = copy.deepcopy(get)
    head["operationId"] = f"{get['operationId']}_head"
    head["summary"] = f"{get['summary']}: the headers only"
    for response in head["responses"].values():
        response.pop("content", None)
    return {"get": get, "head": head}


REF = _param("ref", "path", "Job id, or a name (its newest job)")
AFTER = _param("after", "query", "Resume after this seq", _INT)
LAST_EVENT_ID = _param(
    "Last-Event-ID", "header", "Sent by a reconnecting EventSource; wins over `after`", _INT
)
VIEW = _param(
    "view",
    "query",
    "lines: complete numbered lines (`line` messages), the job's extractions and `complete`",
    _enum("events", "lines"),
)
AFTER_LINE = _param("after_line", "query", "With view=lines: resume after this line", _INT)
LINE_STREAM = _param(
    "stream", "query", "With view=lines: this stream's lines only", _enum("all", "stdout", "stderr")
)
ENCODING = _param(
    "encoding", "query", "base64: output events also carry `b64`", _enum("text", "base64")
)
#: each message of an event stream, as OpenAPI 3.2 describes them (and schemathesis reads 3.1's)
SSE = {
    200: _ok(
        {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "event": _enum(*EventType, "line", default=False),
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {"oneOf": [_ref("Event"), _ref("Line")]},
                        },
                    },
                    # with view=lines, only `line` messages have an `id:` (the line's number)
                    "required": ["event", "data"],
                }
            }
        }
    )
}
#: the firehose: job events as above, and the trace ledger's entries (`event: trace`, no `id:`)
FIREHOSE_SSE = {
    200: _ok(
        {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "event": _enum(*EventType, "trace", default=False),
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {
                                "oneOf": [_ref("Event"), _ref("TraceEntry")],
                            },
                        },
                    },
                    "required": ["event", "data"],
                }
            }
        }
    )
}
#: a job started by /chat or /direct: the job, or (`stream`) its events with where it lives
STARTED = {
    201: _ok(_json(_ref("Job"))),
    200: SSE[200] | {"headers": {"Location": {"schema": {"type": "string"}, "required": True}}},
}
ANSWER = (400, 404, 409, 413, 415, 422)  # a command to a job, with a JSON body


def _paths() -> dict[str, Schema]:
    job = {200: _ok(_json(_ref("Job")))}
    return {
        "/jobs": {
            "post": _op(
                "create_job",
                "Start a job",
                {201: _ok(_json(_ref("Job")))},
                (400, 409, 413, 415, 422, 429, 503),
                body=_json(_ref("JobSpec")),
            ),
            **_with_head(
                _op(
                    "list_jobs",
                    "List jobs, newest first",
                    {200: _ok(_json(_ref("JobList")))},
                    (400,),
                    [
                        _param(
                            "status",
                            "query",
                            "Only jobs with this status",
                            _enum(*JobStatus, default=False),
                        ),
                        _param(
                            "label",
                            "query",
                            "key=value; repeat it for jobs with all of them",
                            {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
                        ),
                        _param("name", "query", "Only jobs with this name"),
                        _param(
                            "kind",
                            "query",
                            "Only processes run (`job`) or only files tailed (`source`)",
                            _enum(*JOB_KINDS, default=False),
                        ),
                        _param(
                            "limit",
                            "query",
                            "Page size; at most 1000 are returned",
                            {**_INT, "minimum": 1, "default": 50},
                        ),
                        _param("cursor", "query", "`next_cursor` of the previous page"),
                    ],
                )
            ),
        },
        "/jobs/{ref}": {
            **_with_head(_op("get_job", "A job", job, (404,), [REF])),
            "delete": _op(
                "delete_job",
                "Forget a finished job and its output",
                {204: _ok()},
                (404, 409, 415),
                [REF],
            ),
        },
        "/jobs/{ref}/cancel": {
            "post": _op(
                "cancel_job",
                "SIGTERM the process group, SIGKILL after a grace; a finished job is left as it is",
                job,
                (404, 409, 415),
                [REF],
            )
        },
        "/jobs/{ref}/input": {
            "post": _op(
                "send_input",
                "Write to stdin or the PTY: JSON, or the bytes themselves as application/octet-stream",
                {200: _ok(_json(_object(written=_COUNT)))},
                ANSWER,
                [REF, _param("eof", "query", "With a raw body: close stdin after it", _BOOL)],
                _json(_ref("InputRequest")) | _text("application/octet-stream"),
            )
        },
        "/jobs/{ref}/signal": {
            "post": _op(
                "send_signal",
                "Signal the process group",
                {200: _ok(_json(_object(signal={"type": "string"})))},
                ANSWER,
                [REF],
                _json(_ref("SignalRequest")),
            )
        },
        "/jobs/{ref}/resize": {
            "post": _op(
                "resize",
                "Set the PTY window size",
                {200: _ok(_json(_object(cols=_COUNT, rows=_COUNT)))},
                ANSWER,
                [REF],
                _json(_ref("ResizeRequest")),
            )
        },
        "/jobs/{ref}/interrupt": {
            "post": _op(
                "interrupt",
                "Ctrl-C as at the job's terminal: its interrupt character through the PTY (the "
                "foreground process group gets SIGINT, a shell survives); SIGINT to the group "
                "without a terminal",
                {200: _ok(_json(_object(interrupted=_enum("VINTR", "SIGINT"))))},
                (404, 409),
                [REF],
            )
        },
        "/jobs/{ref}/log": _with_head(
            _op(
                "job_log",
                "Raw output bytes, by Range or offset, or followed like tail -f",
                {
                    200: _ok(_text("application/octet-stream")),
                    206: _ok(_text("application/octet-stream"), _CONTENT_RANGE),
                },
                (400, 404, 416),
                [
                    REF,
                    _param("stream", "query", "Which output", _enum("all", "stdout", "stderr")),
                    _param("offset", "query", "Start at this byte", _INT),
                    _param("follow", "query", "Keep the response open until the job ends", _BOOL),
                    _param(
                        "Range",
                        "header",
                        "bytes=START-END, bytes=START- or bytes=-N; with follow only bytes=START- (as offset)",
                        {"type": "string", "pattern": "^bytes=[0-9]*-[0-9]*$"},
                    ),
                ],
            )
        ),
        "/jobs/{ref}/asciicast": {
            "get": _op(
                "job_asciicast",
                "The job's recording as asciicast v2 (`asciinema play`): a JSON header line, "
                'then `[t, "o", text]` output, `[t, "r", "COLSxROWS"]` resize events, one a line',
                {200: _ok(_text("application/x-asciicast"))},
                (404,),
                [REF],
            )
        },
        "/jobs/{ref}/events": {
            "get": _op(
                "job_events",
                "Server-Sent Events of the job, an Event in each; ends after `complete`",
                SSE,
                (400, 404),
                [REF, AFTER, LAST_EVENT_ID, ENCODING, VIEW, AFTER_LINE, LINE_STREAM],
            )
        },
        "/jobs/{ref}/lines": _with_head(
            _op(
                "job_lines",
                "Complete output lines with their numbers and streams (no chunks)",
                {200: _ok(_json(_ref("Lines")))},
                (400, 404),
                [
                    REF,
                    AFTER_LINE,
                    LINE_STREAM,
                    _param("limit", "query", "At most this many lines (1 to 10000)", _INT),
                ],
            )
        ),
        "/jobs/{ref}/ws": {
            "get": _op(
                "job_ws",
                "WebSocket: events as JSON text frames (format=raw: output as binary frames); "
                "takes input, resize, signal, interrupt and cancel messages",
                {101: _ok()},
                (400, 404),
                [
                    REF,
                    AFTER,
                    _param("format", "query", "Frames", _enum("json", "raw")),
                    ENCODING,
                    VIEW,
                    AFTER_LINE,
                    LINE_STREAM,
                ],
            )
        },
        "/stream": {
            "get": _op(
                "firehose",
                "Server-Sent Events of all jobs: lifecycle events, and output with output=true; "
                "and the trace ledger's new entries as `trace` events (live only, no `id:`)",
                FIREHOSE_SSE,
                (400,),
                [
                    _param("output", "query", "Include output events", _BOOL),
                    _param("after", "query", "Resume after this global position", _INT),
                    LAST_EVENT_ID,
                    ENCODING,
                ],
            )
        },
        "/ws": {
            "get": _op(
                "mux_ws",
                "WebSocket for many jobs at once: subscribe (ids, names or *), unsubscribe, "
                "send, interrupt, resize, signal, cancel, get_buffer, list; events of every "
                "subscribed job as JSON frames, each with its job and seq (README: /ws)",
                {101: _ok()},
                (400,),
                [ENCODING],
            )
        },
        "/prune": {
            "post": _op(
                "prune_jobs",
                "Delete finished jobs, oldest first, by age, count or output size (no rule given: "
                "the server's retention settings); answers once their space is given back",
                {200: _ok(_json(_ref("PruneResult")))},
                (400, 413, 415, 422),
                body=_json(_ref("PruneRequest")),
            )
        },
        "/pastes": {
            "post": _op(
                "create_paste",
                'Store context by its sha256: JSON {"text"}, or the content itself as the body; '
                "the same content is stored once",
                {201: _ok(_json(_ref("Paste")))},
                (400, 413, 415, 422),
                body=_json(_ref("PasteRequest"))
                | _text("application/octet-stream")
                | _text("text/markdown"),
            )
        },
        "/pastes/{hash}": _with_head(
            _op(
                "get_paste",
                "A paste's content",
                {200: _ok(_text("text/plain"))},
                (400, 404),
                [
                    _param(
                        "hash",
                        "path",
                        "The sha256 of `ctx://paste/<sha256>` (64 lowercase hex digits)",
                        {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    )
                ],
            )
        ),
        "/trace": _with_head(
            _op(
                "get_trace",
                "The trace ledger's entries, newest first",
                {200: _ok(_json(_ref("TraceList")))},
                (400,),
                [
                    _param(
                        "limit",
                        "query",
                        "At most this many (up to 10000)",
                        {**_INT, "minimum": 1, "default": 100},
                    ),
                    _param(
                        "type",
                        "query",
                        "Only these operations; repeat it for several",
                        {"type": "array", "items": _enum(*sorted(OPS), default=False)},
                    ),
                    _param(
                        "op",
                        "query",
                        "The same as `type` (the entries' field is `op`)",
                        {"type": "array", "items": _enum(*sorted(OPS), default=False)},
                    ),
                    _param("job", "query", "Only the entries of this job id"),
                    _param("after", "query", "Only entries with a greater `seq`", _INT),
                ],
            )
        ),
        "/chat": {
            "post": _op(
                "chat",
                "Run the `chat` template with `message` as its `message` parameter: 201 and the "
                "job, or with `stream` its SSE stream (as GET /jobs/{id}/events, `Location` the "
                "job); 404 (with how to define one) on a server without a `chat` template",
                STARTED,
                (400, 404, 409, 413, 415, 422, 429, 503),
                [ENCODING],
                body=_json(_ref("ChatRequest")),
            )
        },
        "/direct": {
            "post": _op(
                "direct",
                "Run a template from a command line, `NAME [--flag] [--key=value] [ARG...]`: "
                "201 and the job, or with `stream` its SSE stream; 404 on a server without "
                "templates, 422 for an unknown one or a bad argument",
                STARTED,
                (400, 404, 409, 413, 415, 422, 429, 503),
                [ENCODING],
                body=_json(_ref("DirectRequest")),
            )
        },
        "/templates": _with_head(
            _op(
                "list_templates",
                "The templates, with their arguments' JSON Schemas",
                {200: _ok(_json(_ref("Templates")))},
                (),
            )
        ),
        "/status": _with_head(
            _op(
                "status",
                "Health, version, job counts, disk use",
                {200: _ok(_json(_ref("Status")))},
                (),
            )
        ),
        "/stats": _with_head(
            _op(
                "stats",
                "Streaming clients, events and bytes sent",
                {200: _ok(_json(_ref("Stats")))},
                (400,),
                [
                    _param(
                        "lag_seconds",
                        "query",
                        "The window of `loop_lag_ms`, in seconds (1-60, default 60)",
                        {"type": "integer", "minimum": 1, "maximum": 60},
                    )
                ],
            )
        ),
        "/metrics": _with_head(
            _op(
                "metrics",
                "Prometheus metrics (text format 0.0.4); scope `metrics` or `read`",
                {200: _ok(_text("text/plain"))},
                (),
            )
        ),
        "/openapi.json": _with_head(
            _op("openapi_json", "This description", {200: _ok(_json({"type": "object"}))}, ())
        ),
        "/docs": _with_head(
            _op("docs", "A page that renders it", {200: _ok(_text("text/html"))}, ())
        ),
        "/": _with_head(_op("index", "The web UI", {200: _ok(_text("text/html"))}, (503,))),
        "/assets/{name}": _with_head(
            _op(
                "asset",
                "A file of the web UI (content-hashed names, cached for ever)",
                {200: _ok({**_text("text/javascript"), **_text("text/css")})},
                (404,),
                [_param("name", "path", "The file's name, as the page gives it")],
            )
        ),
        "/whoami": _with_head(
            _op(
                "whoami",
                "The token's name and scopes, and whether the policy lets it start raw commands",
                {200: _ok(_json(_ref("WhoAmI")))},
                (),
            )
        ),
        "/compat": _with_head(
            _op(
                "list_profiles",
                "The drop-in profiles (the replaced systems' own endpoints, shared/seeds/): "
                "each one's mount point, routes and whether it is on; their wire formats are "
                "their documents', not described here",
                {200: _ok(_json(_ref("Compat")))},
                (),
            )
        ),
    }


_COMPAT: Schema = {
    "type": "object",
    "required": ["prefix", "profiles"],
    "properties": {
        "prefix": {"type": "string", "description": "The compat_prefix setting"},
        "profiles": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "system", "seed", "enabled", "mount", "routes"],
                "properties": {
                    "name": {"type": "string"},
                    "system": {"type": "string"},
                    "seed": {"type": "string", "description": "Its document in shared/seeds/"},
                    "enabled": {"type": "boolean"},
                    "mount": {"type": "string", "description": "Where its paths begin"},
                    "routes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


#: how a token is sent; the scopes an operation needs are listed with the scheme
_SECURITY_SCHEMES: Schema = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer TOKEN`: a token of the config's [[tokens]], or "
        "the admin token the server made in DATA_DIR/token. Scopes: read, run, exec, control, "
        "admin (admin includes all, exec includes run).",
    },
    "access_token": {
        "type": "apiKey",
        "in": "query",
        "name": "access_token",
        "description": "The token in the URL, where a browser cannot set headers (EventSource, "
        "WebSocket, a download link); only on the streams. A WebSocket may also send "
        '`{"type": "auth", "token": ...}` as its first message (closed 4401 without it in 5 s).',
    },
}


_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}


def _secure(paths: dict[str, Schema]) -> dict[str, Schema]:
    """Each operation's `security` (its scope, from auth.RULES) and its 401, in place."""
    for path, ops in paths.items():
        for method, op in ops.items():
            rule = rule_for(method.upper(), path)
            if rule.scope is None:
                op["security"] = []
                continue
            scopes = [str(rule.scope)]
            op["security"] = [{"bearer": scopes}] + (
                [{"access_token": scopes}] if rule.in_query else []
            )
            error: Schema = {"description": _ERRORS[401], "headers": _CHALLENGE}
            if method != "head":
                error["content"] = _json(_ref("Error"))
            op["responses"] = dict(sorted({**op["responses"], "401": error}.items()))
    return paths


def spec() -> Schema:
    _, defs = models_json_schema(_MODELS, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Schema] = {
        **defs["$defs"],
        "Error": _ERROR,
        "Event": _EVENT,
        "Line": _LINE,
        "Lines": _LINES,
        "Status": _STATUS,
        "Stats": _STATS,
        "Templates": _TEMPLATES,
        "WhoAmI": _WHOAMI,
        "Compat": _COMPAT,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobcast", "version": __version__},
        "paths": _secure(_paths()),
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(spec())
