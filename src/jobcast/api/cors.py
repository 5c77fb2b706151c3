"""CORS for the origins in `allowed_origins`: a page served from one of them may use the API.

None by default: the server's own pages are same-origin and need none, and every other origin is
refused by the guard (`guard.py`) before anything here runs. A preflight is answered here,
before authentication, as browsers send it without credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..config import Settings
from .http import Handler

__all__ = ["cors_headers", "cors_middleware"]

_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
#: what a page may send: its token, JSON bodies, resume cursors, byte ranges
_HEADERS = "Authorization, Content-Type, Last-Event-ID, Range"
#: what a page may read besides the simple response headers
_EXPOSE = "Content-Range, Accept-Ranges, Retry-After, WWW-Authenticate"


def _listed(origin: str | None, settings: Settings) -> bool:
    """A cross-origin page we answer: its origin is named in `allowed_origins` (or `*`)."""
    if origin is None:
        return False
    allowed = {o.strip().lower().rstrip("/") for o in settings.allowed_origins}
    return "*" in allowed or origin.strip().lower().rstrip("/") in allowed


def cors_middleware(settings: Settings) -> Middleware:
    """Answer preflights (OPTIONS with `Access-Control-Request-Method`) of listed origins."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if (
            request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
            and _listed(origin, settings)
            and not isinstance(request.match_info.http_exception, web.HTTPNotFound)
        ):
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin or "",
                    "Access-Control-Allow-Methods": _METHODS,
                    "Access-Control-Allow-Headers": _HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        return await handler(request)

    return cors


def cors_headers(
    settings: Settings,
) -> Callable[[web.BaseRequest, web.StreamResponse], Awaitable[None]]:
    """An `on_response_prepare` callback: every response to a listed origin may be read by it,
    streams included (their headers go out before any handler could add them afterwards)."""

    async def add(request: web.BaseRequest, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if _listed(origin, settings) and "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = origin or ""
            response.headers["Access-Control-Expose-Headers"] = _EXPOSE
            response.headers.add("Vary", "Origin")

    return add
