"""GET /, GET /docs and GET /assets/{name}: the web UI's built files, from the package's web/static.

scripts/web.sh builds them with content-hashed names, so an asset may be cached for ever and
only the pages that name them (index.html, and docs.html: Swagger UI over /openapi.json) are
revalidated. Every answer carries a Content-Security-
Policy that allows no inline script and no other origin, and no Referer leaves the page (the
token must never travel in one).
"""

from __future__ import annotations

import asyncio
import re
from importlib.resources import files
from importlib.resources.abc import Traversable

from aiohttp import web

from ..errors import JobcastError, NotFound

__all__ = ["STATIC", "routes", "security_headers"]

routes = web.RouteTableDef()

#: where the build puts the files, inside the installed package
STATIC: Traversable = files("jobcast").joinpath("web", "static")

_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}
#: a built asset's name: what esbuild writes ([name]-[hash].ext), never a path
_ASSET = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.(?:js|css|map|svg|woff2)")
#: assets are immutable once built (their names change with their content): read once
_cache: dict[str, bytes] = {}


def security_headers(response: web.StreamResponse, host: str, cache: str) -> None:
    """What the UI's answers carry; `host` is the request's (the guard has checked it)."""
    response.headers["Cache-Control"] = cache
    # xterm.js sets styles from script and adds <style> elements for its themes, which only
    # 'unsafe-inline' allows for styles; scripts stay 'self' only.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src 'self' ws://{host} wss://{host}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"


class UINotBuilt(JobcastError):
    """The package was installed without its web UI."""

    code = "ui_not_built"
    status = 503


def _read(name: str) -> bytes | None:
    path = STATIC.joinpath(name)
    return path.read_bytes() if path.is_file() else None


async def _page(request: web.Request, name: str) -> web.Response:
    # Read at each request: after `make web` the page names the new assets at once.
    body = await asyncio.to_thread(_read, name)
    if body is None:
        raise UINotBuilt(
            "the web UI is not built into this installation: run `make web` in the source "
            "tree (it needs npm), or install a wheel built with `pip wheel .`"
        )
    resp = web.Response(body=body, content_type="text/html", charset="utf-8")
    security_headers(resp, request.host, "no-cache")
    return resp


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return await _page(request, "index.html")


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return await _page(request, "docs.html")


@routes.get("/assets/{name}")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = _cache.get(name)
    if body is None:
        body = await asyncio.to_thread(_read, name) if _ASSET.fullmatch(name) else None
        if body is None:
            raise NotFound(f"no asset {name[:100]!r}; the page names its assets in /")
        _cache[name] = body
    kind = _TYPES[name[name.rindex(".") :]]
    resp = web.Response(body=body, content_type=kind)
    security_headers(resp, request.host, "public, max-age=31536000, immutable")
    resp.enable_compression()
    return resp
