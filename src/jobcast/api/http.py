"""JSON in and out: request bodies through pydantic, responses through orjson, errors as JobcastError."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..errors import BadRequest, InvalidJSON, JobcastError, ValidationFailed

__all__ = [
    "ERROR_SHAPE",
    "MAX_INT",
    "ErrorShape",
    "describe",
    "error_middleware",
    "header_int",
    "json_response",
    "parse_body",
    "parse_uint",
    "query_int",
]

log = logging.getLogger("jobcast.api")
M = TypeVar("M", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if not raw:
        raise InvalidJSON(f"the request body is empty; send a JSON object ({model.__name__})")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidJSON(f"the request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidJSON(f"the request body must be a JSON object ({model.__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValidationFailed(describe(e)) from None


#: Cursors and offsets end up in SQLite's signed 64-bit integers: anything larger is refused here.
MAX_INT = 2**63 - 1
# ASCII only: int() also takes "٣", "+3", " 3" and "1_000", which no client means as a cursor.
_UINT = re.compile(r"[0-9]{1,19}")


def parse_uint(raw: str, what: str, minimum: int = 0) -> int:
    """The one reading of a cursor, offset or count from a request: ASCII digits, in range."""
    if not _UINT.fullmatch(raw) or int(raw) > MAX_INT:
        raise BadRequest(f"{what} must be a non-negative integer below 2**63, not {raw[:40]!r}")
    value = int(raw)
    if value < minimum:
        raise BadRequest(f"{what} must be at least {minimum}, not {value}")
    return value


def query_int(
    request: web.Request, name: str, default: int | None = None, minimum: int = 0
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return parse_uint(raw, f"query parameter `{name}`", minimum)


def query_b64(request: web.Request) -> bool:
    """`?encoding=`: `text` (the default) or `base64`, which adds `b64` to output events."""
    encoding = request.query.get("encoding", "text")
    if encoding not in ("text", "base64"):
        raise BadRequest(f"query parameter `encoding` must be `text` or `base64`, not {encoding!r}")
    return encoding == "base64"


def header_int(request: web.Request, name: str) -> int | None:
    """An integer header; absent or empty is None (EventSource may send `Last-Event-ID: `)."""
    raw = request.headers.get(name, "").strip()
    return parse_uint(raw, f"header `{name}`") if raw else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: (status, code, message) -> the body of an error in a drop-in profile's own shape
ErrorShape = Callable[[int, str, str], Any]
#: the attribute of a route's handler naming its error shape (api/compat sets it)
ERROR_SHAPE = "jobcast_error_shape"


def _shape(request: web.Request) -> ErrorShape | None:
    """The error shape of the route matched, if it has its own (a drop-in profile's)."""
    return getattr(request.match_info.handler, ERROR_SHAPE, None)


def _http_error(request: web.Request, e: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own errors (404, 405, 413, a refused upgrade...) in the JSON error shape."""
    if isinstance(e, web.HTTPNotFound):
        code, msg = "not_found", f"no such endpoint: {request.method} {request.path}; see /docs"
    elif isinstance(e, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(e.allowed_methods))
        code, msg = (
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}; use {allowed}",
        )
    elif isinstance(e, web.HTTPRequestEntityTooLarge):
        code, msg = "too_large", e.text or "body too large"
    else:
        code = (e.reason or "error").lower().replace(" ", "_").replace("-", "_")
        msg = e.text or e.reason
    shape = _shape(request)
    body = (
        {"error": {"code": code, "message": msg}} if shape is None else shape(e.status, code, msg)
    )
    resp = json_response(body, e.status)
    for key in ("Allow", "Retry-After", "WWW-Authenticate"):
        if key in e.headers:
            resp.headers[key] = e.headers[key]
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except JobcastError as e:
        shape = _shape(request)
        body = e.to_payload() if shape is None else shape(e.status, e.code, e.message)
        resp = json_response(body, e.status)
        # Some errors come with headers of their own (a 416's `Content-Range: bytes */SIZE`).
        resp.headers.update(getattr(e, "headers", None) or {})
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            raise  # redirects and the like are answers, not errors
        return _http_error(request, e)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        payload = {
            "error": {"code": "internal", "message": "internal server error; see the server log"}
        }
        return json_response(payload, 500)
