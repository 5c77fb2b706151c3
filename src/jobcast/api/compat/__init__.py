"""Drop-in profiles: the endpoints and wire formats of the systems jobcast replaces (shared/seeds/).

Each profile is one module here whose `PROFILE` names its system, the seed it follows, its error
shape and its routes, each route with the auth rule that maps it onto jobcast's scopes, its path
relative to the profile's mount point. `install` mounts the enabled ones under
`<compat_prefix>/<name>` (`compat_prefix = ""`: at the root, as the old server had them, where no
path collides with jobcast's own); `compat_off` switches profiles off. `GET /compat` lists them.

A new profile is a module with a `PROFILE` and its name in `MODULES`; nothing else changes
(tests/api/compat/test_frame.py checks its routes are mounted with their rules). A WebSocket
route is a `Route` like any other, its `Rule(..., in_query=True, socket=True)` (the token may
then come as the socket's first message, `auth.authenticate_socket`); the error shape is for
the HTTP answers (before an upgrade, or a route's plain errors). A profile speaking /ws's
multiplexed protocol in other words is a `muxcodec.Codec` handed to `mux.serve` (cbos.py); one
that keeps a server of its own on the app (nebula's socket.io) makes it in `Profile.setup`. `api/compat/sse.py` has what
the SSE profiles share (ISO times, messages, frames cached on the event).

A profile is a transport, no more: its handlers read the same store through the same cursors
(`api.follow`, `api.lines`) as jobcast's own streams, and encode each event once into its frame.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ...config import Settings
from ..auth import RULES, Rule
from ..http import ERROR_SHAPE, ErrorShape, Handler, json_response
from ..state import STATE

__all__ = [
    "MODULES",
    "PROFILES",
    "Profile",
    "Route",
    "body_types",
    "collisions",
    "install",
    "mount_point",
    "routes",
    "rules",
]

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    #: below the mount point, from its `/`: `/api/executions/{ref}/stream`
    path: str
    handler: Handler
    rule: Rule
    #: body types it takes besides JSON (the guard refuses others, api/guard.py)
    body_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Profile:
    #: the mount point's last part, and the name `compat_off` takes
    name: str
    #: the system, as its document calls itself
    title: str
    #: its document in shared/seeds/
    seed: str
    routes: tuple[Route, ...]
    #: (status, code, message) -> an error body as the old system wrote them
    error: ErrorShape
    #: what the profile keeps on the app (a socket.io server, say), set up when it is mounted
    setup: Callable[[web.Application, Settings], None] | None = None


#: the modules of the profiles there are, in the order `GET /compat` lists them: a new profile
#: is a module here with a `PROFILE`, and its name in this list
MODULES = ("nstar", "bolt", "cbos", "agents", "nebula")


def _profiles() -> tuple[Profile, ...]:
    return tuple(importlib.import_module(f"{__name__}.{m}").PROFILE for m in MODULES)


#: every profile there is, enabled or not; built on first use (it imports the profiles)
PROFILES: Callable[[], tuple[Profile, ...]] = functools.cache(_profiles)


def mount_point(settings: Settings, profile: Profile) -> str:
    """Where the profile's paths begin: `/compat/bolt`, or "" at the root."""
    prefix = settings.compat_prefix
    return f"{prefix}/{profile.name}" if prefix else ""


def _enabled(settings: Settings) -> list[Profile]:
    return [p for p in PROFILES() if p.name not in settings.compat_off]


def rules(settings: Settings) -> dict[tuple[str, str], Rule]:
    """jobcast's rules and those of the enabled profiles' routes, as mounted."""
    out = dict(RULES)
    for profile in _enabled(settings):
        mount = mount_point(settings, profile)
        for route in profile.routes:
            out.setdefault((route.method, mount + route.path), route.rule)
    return out


def body_types(settings: Settings) -> dict[str, frozenset[str]]:
    """The raw body types of the enabled profiles' routes, by path as mounted."""
    return {
        mount_point(settings, p) + r.path: r.body_types
        for p in _enabled(settings)
        for r in p.routes
        if r.body_types
    }


def collisions(settings: Settings) -> str | None:
    """What is wrong with mounting the enabled profiles as configured (a path of one that is
    jobcast's own, or another profile's), in a sentence; None if nothing is."""
    taken = {key: "jobcast's own" for key in RULES}
    for profile in _enabled(settings):
        mount = mount_point(settings, profile)
        for route in profile.routes:
            key = (route.method, mount + route.path)
            if key in taken:
                return (
                    f"the {profile.name} profile's {key[0]} {key[1]} is {taken[key]} route: "
                    f"set compat_prefix (e.g. /compat) or compat_off = [{profile.name!r}]"
                )
            taken[key] = f"the {profile.name} profile's"
    return None


def _shaped(handler: Handler, shape: ErrorShape) -> Handler:
    @functools.wraps(handler)
    async def shaped(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    setattr(shaped, ERROR_SHAPE, shape)
    return shaped


def install(app: web.Application, settings: Settings) -> None:
    """Add the enabled profiles' routes to `app`, each answering errors in its profile's shape.

    Raises:
        ValueError: a path collides (`collisions` says which).
    """
    problem = collisions(settings)
    if problem is not None:
        raise ValueError(problem)
    for profile in _enabled(settings):
        if profile.setup is not None:
            profile.setup(app, settings)
        mount = mount_point(settings, profile)
        for route in profile.routes:
            app.router.add_route(
                route.method, mount + route.path, _shaped(route.handler, profile.error)
            )


@routes.get("/compat")
async def list_profiles(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    return json_response(
        {
            "prefix": settings.compat_prefix,
            "profiles": [
                {
                    "name": p.name,
                    "system": p.title,
                    "seed": p.seed,
                    "enabled": p.name not in settings.compat_off,
                    "mount": mount_point(settings, p) + "/",
                    "routes": [f"{r.method} {mount_point(settings, p)}{r.path}" for r in p.routes],
                }
                for p in PROFILES()
            ],
        }
    )
