"""GET /trace: the newest entries of the trace ledger, filtered by operation, job and cursor."""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest
from ..trace import OPS
from .http import json_response, query_int
from .state import STATE

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/trace")
async def get_trace(request: web.Request) -> web.Response:
    # `type` as DESIGN.md names it; `op` as the entries name the field: either filters.
    q = request.query
    ops = frozenset([*q.getall("type", []), *q.getall("op", [])])
    if unknown := sorted(ops - OPS):
        raise BadRequest(
            f"unknown operation {unknown[0]!r} (query parameter `type` or `op`); use one of "
            f"{', '.join(sorted(OPS))}"
        )
    limit = query_int(request, "limit", 100, minimum=1) or 100
    after = query_int(request, "after", 0) or 0
    entries = await request.app[STATE].trace.read(
        limit=min(limit, 10_000), ops=ops, job=request.query.get("job") or None, after=after
    )
    return json_response({"entries": entries})
