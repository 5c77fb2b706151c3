"""/openapi.json cannot drift from the router: the same (method, path) pairs, both ways."""

from __future__ import annotations

from pathlib import Path

from jobcast.api.app import create_app
from jobcast.api.openapi import spec
from jobcast.config import Settings

#: Describe the API rather than being part of it.
SELF = {"/openapi.json", "/docs"}


def test_every_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    routed = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None and r.resource.canonical not in SELF
    }
    documented = {(m, p) for p, ops in spec()["paths"].items() for m in ops}
    assert routed == documented
