"""The web UI's files over HTTP, without a browser: / and its assets with their security and
cache headers, refused names, and /whoami for each kind of token."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

READ, RUN = "tok-read-0123456789", "tok-run-0123456789"
CONFIG = (
    f'[[tokens]]\nname = "viewer"\ntoken = "{READ}"\nscopes = ["read"]\n'
    f'[[tokens]]\nname = "runner"\ntoken = "{RUN}"\nscopes = ["read", "run"]\n'
    'labels = { team = "infra" }\n'
)


@pytest.fixture
def tokened(server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path) -> ServerProcess:
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(CONFIG)
    return server_factory(data_dir, extra=["--config", str(cfg)]).start()


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


@pytest.mark.parametrize("page", ["/", "/docs"])
def test_the_page_loads_without_a_token_with_a_strict_policy(
    server: ServerProcess, page: str
) -> None:
    r = httpx.get(server.url + page)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    csp = dict(
        part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";")
    )
    assert csp["script-src"] == "'self'"  # no inline script, no other origin
    assert csp["default-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert csp["connect-src"].split() == [
        "'self'",
        f"ws://127.0.0.1:{server.port}",
        f"wss://127.0.0.1:{server.port}",
    ]
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-cache"
    # Everything the page needs comes from here: no CDN, no inline script.
    links = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert "<script>" not in r.text and not [link for link in links if "//" in link]


def test_the_assets_the_page_names_are_served_and_cached_for_ever(server: ServerProcess) -> None:
    page = httpx.get(server.url + "/").text
    assets = _assets(page)
    kinds = {}
    for path in assets:
        r = httpx.get(server.url + path, headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200, path
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers.get("Content-Encoding") == "gzip"
        kinds[path.rsplit(".", 1)[1]] = (r.headers["Content-Type"], r.text)
    assert kinds["js"][0].startswith("text/javascript")
    assert kinds["css"][0].startswith("text/css")
    assert ".xterm" in kinds["css"][1]  # xterm.js's own stylesheet is bundled in


def test_docs_names_its_own_bundle(server: ServerProcess) -> None:
    docs = _assets(httpx.get(server.url + "/docs").text)
    assert len(docs) == 2 and not set(docs) & set(_assets(httpx.get(server.url + "/").text))
    css = next(a for a in docs if a.endswith(".css"))
    assert ".swagger-ui" in httpx.get(server.url + css).text  # Swagger UI's stylesheet


@pytest.mark.parametrize(
    "name", ["nope.js", "..%2Fpyproject.toml", ".hidden.js", "index.html", "app.exe"]
)
def test_anything_else_under_assets_is_a_404_in_the_error_shape(
    server: ServerProcess, name: str
) -> None:
    r = httpx.get(f"{server.url}/assets/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_whoami_tells_the_admin_token_everything(server: ServerProcess) -> None:
    me = httpx.get(server.url + "/whoami", headers=server.headers).json()
    assert me["name"] == "admin"
    assert {"read", "run", "exec", "control", "admin"} <= set(me["scopes"])
    assert me == {**me, "auth": True, "mode": "expert", "raw_commands": True, "control": True}


def test_whoami_tells_a_limited_token_what_it_may_not(tokened: ServerProcess) -> None:
    viewer = httpx.get(tokened.url + "/whoami", headers={"Authorization": f"Bearer {READ}"})
    assert viewer.json() == {
        "name": "viewer",
        "scopes": ["metrics", "read"],
        "labels": {},
        "auth": True,
        "mode": "expert",
        "raw_commands": False,
        "control": False,
    }
    runner = httpx.get(tokened.url + "/whoami", headers={"Authorization": f"Bearer {RUN}"})
    assert runner.json()["labels"] == {"team": "infra"}
    assert runner.json()["raw_commands"] is False  # `run` starts templates, not raw commands
    anonymous = httpx.get(tokened.url + "/whoami")
    assert anonymous.status_code == 401


def test_whoami_without_auth_is_the_local_operator(
    server_factory: type[ServerProcess], data_dir: Path
) -> None:
    open_server = server_factory(data_dir, env={"JOBCAST_AUTH": "none"}).start()
    me = httpx.get(open_server.url + "/whoami").json()
    assert me["name"] == "local" and me["auth"] is False and me["raw_commands"] is True


def test_a_safe_policy_offers_no_raw_commands(
    server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text('[policy]\nmode = "safe"\n[templates.hi]\ncommand = ["echo", "hi"]\n')
    safe = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    me = httpx.get(safe.url + "/whoami", headers=safe.headers).json()
    assert me["mode"] == "safe" and me["raw_commands"] is False and me["control"] is True
