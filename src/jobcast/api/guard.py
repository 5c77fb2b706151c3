"""No web page can drive jobcast: Host, Origin and Content-Type checks on every request.

A page on any site can make the browser send a "simple" request (a form POST as text/plain,
urlencoded or multipart, no preflight) to 127.0.0.1, and a page whose DNS name rebinds to
127.0.0.1 talks to us as a same-origin page with its own name in `Host`. So: `Host` must be one
of our names, an `Origin` (browsers send it on every cross-origin and every non-GET request) must
be ours, and a body must be JSON (or a raw type the endpoint documents), which a browser never
sends cross-site without a preflight that we do not answer.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..config import Settings
from ..errors import Forbidden, UnsupportedMediaType
from .http import Handler

__all__ = ["guard_middleware", "host_allowed", "origin_allowed"]

_LOCAL = {"localhost", "127.0.0.1", "::1"}
_WILDCARDS = {"", "0.0.0.0", "::"}
_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
#: the raw-body types an endpoint documents besides JSON (never text/plain, urlencoded, multipart)
_RAW_TYPES = {
    "/jobs/{ref}/input": {"application/octet-stream"},
    "/pastes": {"application/octet-stream", "text/markdown"},
}


def _hostname(host_header: str) -> str:
    """`[::1]:8080` -> `::1`, `Example.COM.:80` -> `example.com`."""
    h = host_header.strip().lower()
    if h.startswith("["):
        h = h[1 : h.find("]")] if "]" in h else h[1:]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host_header: str, settings: Settings) -> bool:
    allowed = {h.lower().strip("[]") for h in settings.allowed_hosts}
    if "*" in allowed:
        return True
    name = _hostname(host_header)
    own = _hostname(settings.host) if settings.host not in _WILDCARDS else None
    if name in _LOCAL or name == own or name in allowed:
        return True
    # Bound to every address: any of the machine's IP literals reaches us, and no DNS name can
    # rebind to an IP literal. Names still need `allowed_hosts`.
    return settings.host in _WILDCARDS and _is_ip(name)


def origin_allowed(origin: str, host_header: str | None, settings: Settings) -> bool:
    origin = origin.strip().lower().rstrip("/")
    allowed = {o.strip().lower().rstrip("/") for o in settings.allowed_origins}
    if "*" in allowed or origin in allowed:
        return True
    # Our own origin: the page was served from the very host:port this request came to (the
    # Host header was checked first). The scheme is not compared: behind a TLS proxy it differs.
    _, sep, authority = origin.partition("://")
    return bool(sep) and host_header is not None and authority == host_header.strip().lower()


def guard_middleware(
    settings: Settings, more_types: dict[str, frozenset[str]] | None = None
) -> Middleware:
    """`more_types`: the raw body types of more routes (the drop-in profiles'), by path."""
    raw_types = {**_RAW_TYPES, **(more_types or {})}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A request without Host is not from a browser (they always send it): nothing to check.
        host = request.headers.get("Host")
        if host is not None and not host_allowed(host, settings):
            raise Forbidden(
                f"Host {_hostname(host)!r} is not allowed; add it to allowed_hosts "
                "(JOBCAST_ALLOWED_HOSTS, --allowed-hosts) to reach this server by that name"
            )
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, host, settings):
            raise Forbidden(
                f"Origin {origin!r} is not allowed; add it to allowed_origins "
                "(JOBCAST_ALLOWED_ORIGINS, --allowed-origins) to let pages from there use this server"
            )
        if request.method in _STATE_CHANGING and request.match_info.http_exception is None:
            _check_content_type(request, raw_types)
        return await handler(request)

    return guard


def _check_content_type(request: web.Request, raw_types: dict[str, Any]) -> None:
    raw = request.headers.get("Content-Type")
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    if raw is None:
        # No body, no type (`POST /jobs/x/cancel`, `DELETE /jobs/x`). A browser can send such a
        # POST cross-site, but always with an Origin, refused above unless it is allowed.
        if not request.body_exists:
            return
        media = ""
    else:
        media = raw.split(";", 1)[0].strip().lower()
    accepted = {"application/json", *raw_types.get(path, ())}
    if media not in accepted:
        raise UnsupportedMediaType(
            f"{request.method} {request.path} takes Content-Type: "
            + " or ".join(sorted(accepted))
            + (f", not {media!r}" if media else " (the request has a body but no Content-Type)")
        )
