"""One log line per request: method, path (never the query string, where a token may be), status,
duration and the name of the token that made it; for a stream, when it ends."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from .http import Handler
from .ledger import request_identity

__all__ = ["access_middleware"]

logger = logging.getLogger("jobcast.access")

#: the status logged for a request whose client went away before it was answered (nginx's)
_CLIENT_GONE = 499


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not logger.isEnabledFor(logging.INFO):
        return await handler(request)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        status = _CLIENT_GONE
        raise
    finally:
        ms = round((time.perf_counter() - start) * 1000, 1)
        path, who = request.path[:300], request_identity(request)
        fields = {
            "method": request.method,
            "path": path,
            "status": status,
            "duration_ms": ms,
            "token": who,
        }
        logger.info(
            "%s %s %d %.1fms (token %s)",
            request.method,
            path,
            status,
            ms,
            who,
            extra={"fields": fields},
        )
