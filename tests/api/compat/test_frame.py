"""The frame of the drop-in profiles: where they are mounted, switched off, listed, and the
auth rule each route maps onto jobcast's scopes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from jobcast.api.app import create_app
from jobcast.api.compat import PROFILES, collisions, mount_point, rules
from jobcast.api.http import ERROR_SHAPE
from jobcast.config import Settings
from tests.conftest import ServerProcess


def test_every_profile_route_is_mounted_with_its_rule(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings)
    mounted = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and hasattr(r.handler, ERROR_SHAPE)
    }
    expected = {
        (route.method, mount_point(settings, p) + route.path): route.rule
        for p in PROFILES()
        for route in p.routes
    }
    assert mounted == set(expected)
    table = rules(settings)
    assert all(table[key] == rule for key, rule in expected.items())
    assert all(path.startswith(f"/compat/{path.split('/')[2]}/") for _, path in mounted)


def test_get_compat_lists_the_profiles(compat: ServerProcess) -> None:
    listing = httpx.get(f"{compat.url}/compat").json()
    assert listing["prefix"] == "/compat"
    names = [p["name"] for p in listing["profiles"]]
    assert names == ["nstar", "bolt", "cbos", "agents", "nebula"]
    bolt = listing["profiles"][1]
    assert bolt["mount"] == "/compat/bolt/" and bolt["enabled"] is True
    assert "GET /compat/bolt/api/executions/{ref}/stream" in bolt["routes"]
    assert bolt["seed"] == "001_bab56ae1d5ffe00c.txt"


def test_a_profile_switched_off_is_not_served(
    server_factory: type[ServerProcess], data_dir: Path
) -> None:
    server = server_factory(data_dir, extra=["--auth", "none", "--compat-off", "bolt"]).start()
    assert httpx.get(f"{server.url}/compat/bolt/api/streaming/stats").status_code == 404
    assert httpx.get(f"{server.url}/compat/agents/api/sse/stats").status_code == 200
    listing = httpx.get(f"{server.url}/compat").json()["profiles"]
    assert {p["name"]: p["enabled"] for p in listing} == {
        "nstar": True,
        "bolt": False,
        "cbos": True,
        "agents": True,
        "nebula": True,
    }


def test_at_the_root_where_nothing_collides(
    server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path
) -> None:
    # nstar's GET /status is jobcast's own: at the root, it must be off (or prefixed).
    problem = collisions(Settings(data_dir=tmp_path, compat_prefix=""))
    assert problem is not None and "nstar" in problem and "GET /status" in problem
    cmd = [sys.executable, "-m", "jobcast", "serve", "--data-dir", str(tmp_path / "d")]
    refused = subprocess.run([*cmd, "--compat-prefix", ""], capture_output=True, timeout=60)
    assert refused.returncode == 2 and b"compat_off" in refused.stderr
    extra = ["--auth", "none", "--compat-prefix", "", "--compat-off", "nstar"]
    server = server_factory(data_dir, extra=extra).start()
    assert httpx.get(f"{server.url}/api/streaming/stats").json() == {"activeExecutions": 0}
    assert httpx.get(f"{server.url}/api/sse/stats").json()["total_clients"] == 0
    profiles = httpx.get(f"{server.url}/compat").json()["profiles"]
    assert profiles[1]["mount"] == "/"
    assert profiles[2]["routes"] == ["GET /ws/stream"]  # beside jobcast's own /ws


def test_the_settings_refuse_what_cannot_be_mounted() -> None:
    import pytest

    from jobcast.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="compat_off.0: Input should be 'nstar'"):
        load_settings(compat_off=["bolts"])
    with pytest.raises(ConfigError, match="compat_prefix"):
        load_settings(compat_prefix="compat/")
