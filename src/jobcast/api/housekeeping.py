"""POST /prune: delete finished jobs by age, count or size now (the retention rules on demand)."""

from __future__ import annotations

from aiohttp import web

from ..models import PruneRequest, PruneResult
from ..retention import Policy, prune
from .http import json_response, parse_body
from .ledger import request_identity
from .state import STATE

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/prune")
async def prune_jobs(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await parse_body(request, PruneRequest)
    rules = Policy(body.older_than, body.max_jobs, body.max_bytes)
    policy = rules if rules.active else state.retention
    # Answers once the jobs are gone and their space given back: a big prune takes a while,
    # in the store's writer thread, never on the loop.
    done = await prune(state.store, policy, dry_run=body.dry_run, by="a prune request")
    if done.deleted and not body.dry_run:
        who = request_identity(request)
        await state.trace.record_many(
            [("job.delete", who, job_id, "ok", {"by": "prune"}) for job_id in done.deleted]
        )
    return json_response(PruneResult(deleted=done.deleted, bytes=done.bytes, dry_run=body.dry_run))
