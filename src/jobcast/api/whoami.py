"""GET /whoami: the token's name and scopes, and what the policy lets it start, for a client
(the web UI) to offer only what will be allowed."""

from __future__ import annotations

from aiohttp import web

from ..config import Scope
from .auth import IDENTITY, TOKENS
from .http import json_response
from .state import STATE

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/whoami")
async def whoami(request: web.Request) -> web.Response:
    identity = request[IDENTITY]
    mode = request.app[STATE].policy.config.mode
    return json_response(
        {
            "name": identity.name,
            "scopes": sorted(identity.scopes),
            "labels": dict(identity.labels),
            "auth": request.app[TOKENS].enabled,
            "mode": mode,
            # What the policy's `check` would say of a raw command, before any deny pattern.
            "raw_commands": mode == "expert" and identity.allows(Scope.EXEC),
            "control": identity.allows(Scope.CONTROL),
        }
    )
