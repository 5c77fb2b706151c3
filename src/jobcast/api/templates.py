"""GET /templates: the templates the policy offers, each with its arguments' JSON Schema."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..policy import Policy
from .http import json_response
from .state import STATE

__all__ = ["describe", "routes"]

routes = web.RouteTableDef()


def describe(policy: Policy) -> dict[str, Any]:
    """What a client needs to offer the templates: a web UI builds its form from `schema`."""
    return {
        "mode": policy.config.mode,
        "templates": [
            {
                "name": name,
                "description": t.description,
                "command": list(t.command),
                "pty": t.pty,
                "timeout": t.timeout,
                "schema": t.json_schema(),
            }
            for name, t in sorted(policy.templates.items())
        ],
    }


@routes.get("/templates")
async def list_templates(request: web.Request) -> web.Response:
    return json_response(describe(request.app[STATE].policy))
