"""/status (health, version, job counts, disk use) and /stats (streaming clients, events and bytes sent)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .. import __version__
from ..config import safe_store_url
from ..errors import BadRequest
from ..protocol import PROTOCOL_VERSION
from .auth import IDENTITY
from .http import json_response, query_int
from .state import STATE

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/status")
async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sup = state.supervisor
    return json_response(
        {
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "uptime": round(time.time() - state.started, 3),
            # No password: /status is open to anyone
            "store": safe_store_url(state.settings.store),
            "jobs": {"queued": sup.queued(), "running": sup.running()},
            # Walked at each call, in a reader thread: exact right after a delete.
            "disk": await state.store.disk_usage(),
        }
    )


@routes.get("/stats")
async def stats(request: web.Request) -> web.Response:
    stats = request.app[STATE].stats
    window = int(stats.loop_lag.window_seconds)
    seconds = query_int(request, "lag_seconds", window, minimum=1)
    if seconds is not None and seconds > window:
        raise BadRequest(f"query parameter `lag_seconds` must be at most {window}, not {seconds}")
    snapshot = stats.snapshot(seconds)
    # What a leak shows first (bench/soak.py checks it comes back to its baseline).
    snapshot["tasks"] = len(asyncio.all_tasks())
    if request[IDENTITY].labels:
        # other jobs' ids: not for a token limited to some jobs
        snapshot["per_job"] = snapshot["jobs"] = {}
    return json_response(snapshot)
