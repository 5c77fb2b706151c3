"""JSON in and out: request bodies through pydantic, responses through orjson, errors as JobcastError."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..errors import BadRequest, InvalidJSON, JobcastError, NotFound, ValidationFailed

__all__ = ["error_middleware", "json_response", "parse_body", "query_int"]

log = logging.getLogger("jobcast.api")
M = TypeVar("M", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _describe(e: ValidationError) -> str:
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
        raise ValidationFailed(_describe(e)) from None


def query_int(
    request: web.Request, name: str, default: int | None = None, minimum: int = 0
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter `{name}` must be an integer, not {raw!r}") from None
    if value < minimum:
        raise BadRequest(f"query parameter `{name}` must be at least {minimum}")
    return value


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except JobcastError as e:
        return json_response(e.to_payload(), e.status)
    except web.HTTPNotFound:
        err = NotFound(f"no such endpoint: {request.method} {request.path}; see /docs")
        return json_response(err.to_payload(), 404)
    except web.HTTPMethodNotAllowed as e:
        msg = f"{request.method} is not allowed on {request.path}; use {', '.join(sorted(e.allowed_methods))}"
        return json_response({"error": {"code": "method_not_allowed", "message": msg}}, 405)
    except web.HTTPRequestEntityTooLarge as e:
        return json_response(
            {"error": {"code": "too_large", "message": e.text or "body too large"}}, 413
        )
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        payload = {
            "error": {"code": "internal", "message": "internal server error; see the server log"}
        }
        return json_response(payload, 500)
