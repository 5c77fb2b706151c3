"""Auth against a real server: the generated admin token, scopes on every route (taken from the
router), tokens in the URL and in a WebSocket's first message, label limits, and no token in
the server's output."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import stat
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from jobcast.api.app import create_app
from jobcast.api.auth import RULES, WS_AUTH_TIMEOUT, RedactTokens, Tokens, rule_for
from jobcast.api.http import ERROR_SHAPE
from jobcast.api.ui import STATIC
from jobcast.config import Scope, Settings, TokenConfig
from tests.conftest import ServerProcess, wait_job
from tests.helpers import async_wait_for, collect_sse

#: one token per scope, and one limited to the jobs labelled team=infra
TOKENS = {scope.value: f"tok-{scope.value}-0123456789" for scope in Scope}
INFRA = "tok-infra-0123456789"
INFRA_ADMIN = "tok-infra-admin-0123456789"
CONFIG = "".join(
    f'[[tokens]]\nname = "{name}-token"\ntoken = "{token}"\nscopes = ["{name}"]\n'
    for name, token in TOKENS.items()
) + (
    '[[tokens]]\nname = "infra"\n'
    f'token_sha256 = "{hashlib.sha256(INFRA.encode()).hexdigest()}"\n'
    'scopes = ["read", "exec", "control"]\nlabels = { team = "infra" }\n'
    f'[[tokens]]\nname = "infra-admin"\ntoken = "{INFRA_ADMIN}"\nscopes = ["admin"]\n'
    'labels = { team = "infra" }\n'
)


@pytest.fixture
def tokened(server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path) -> ServerProcess:
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(CONFIG)
    extra = ["--config", str(cfg), "--heartbeat-seconds", "1", "--log-level", "debug"]
    return server_factory(data_dir, extra=extra).start()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _routes(tmp_path: Path) -> list[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path))
    return sorted(
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and not hasattr(r.handler, ERROR_SHAPE)
    )


def test_every_route_of_the_router_has_a_rule(tmp_path: Path) -> None:
    routes = _routes(tmp_path)
    for method, path in routes:
        assert ("GET" if method == "HEAD" else method, path) in RULES, (method, path)
    assert {(m, p) for m, p in routes if m != "HEAD"} == set(RULES)


def _granted(token: str | None, method: str, path: str) -> Scope | None:
    """The scope `token` lacks for this request; None if it may."""
    needed = [rule_for(method, path).scope]
    if (method, path) == ("POST", "/jobs"):
        needed.append(Scope.EXEC)  # the route's `run`, then `exec`: no templates yet, all raw
    name = next(k for k, v in TOKENS.items() if v == token)
    have = {Scope(name)} | ({*Scope} if name == "admin" else set())
    have |= {Scope.RUN} if name == "exec" else set()
    have |= {Scope.METRICS} if name == "read" else set()
    return next((s for s in needed if s is not None and s not in have), None)


_BODIES = {
    ("POST", "/jobs"): {"argv": ["true"]},
    ("POST", "/prune"): {"dry_run": True},
    ("POST", "/jobs/{ref}/input"): {"data": "x"},
    ("POST", "/jobs/{ref}/signal"): {"signal": "TERM"},
    ("POST", "/jobs/{ref}/resize"): {"cols": 80, "rows": 24},
    ("POST", "/pastes"): {"text": "x"},
    ("POST", "/chat"): {"message": "hi"},
    ("POST", "/direct"): {"command": "test"},
}


def _an_asset() -> str:
    """A file the built UI has (`make test` builds it)."""
    return next(p.name for p in STATIC.iterdir() if p.name.endswith(".js"))


def _status(api: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    url = path.replace("{ref}", "nope").replace("{hash}", "0" * 64)
    url = url.replace("{name}", _an_asset()) if "{name}" in url else url
    body = _BODIES.get((method, path))
    with api.stream(method, url, json=body, headers=headers) as r:
        if path != "/stream" or r.status_code != 200:  # the firehose never ends
            r.read()
        return r


def test_each_scope_gets_what_it_should_on_every_route(tokened: ServerProcess, tmp_path: Path):
    with httpx.Client(base_url=tokened.url, timeout=30) as api:
        for method, path in _routes(tmp_path):
            rule = rule_for(method, path)
            anonymous = _status(api, method, path, {})
            if rule.scope is None:
                assert anonymous.status_code == 200, (method, path)
            else:
                assert anonymous.status_code == 401, (method, path)
                assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
                if method != "HEAD":
                    assert anonymous.json()["error"]["code"] == "unauthorized"
            for token in TOKENS.values():
                r = _status(api, method, path, bearer(token))
                lacking = _granted(token, method, path)
                if lacking is None:
                    # through to the handler: the job `nope` does not exist, a WebSocket wants
                    # an upgrade, the rest answers
                    assert r.status_code in (200, 201, 204, 400, 404), (method, path, token)
                else:
                    assert r.status_code == 403, (method, path, token, r.status_code)
                    if method != "HEAD":
                        error = r.json()["error"]
                        assert error["code"] == "missing_scope"
                        assert f"`{lacking}` scope" in error["message"], error


def test_a_bad_token_is_told_apart_from_none(tokened: ServerProcess):
    with httpx.Client(base_url=tokened.url, timeout=30) as api:
        none = api.get("/jobs")
        bad = api.get("/jobs", headers=bearer("not-a-token"))
        basic = api.get("/jobs", headers={"Authorization": "Basic eDp5"})
    assert none.headers["WWW-Authenticate"] == 'Bearer realm="jobcast"'
    assert "Authorization: Bearer" in none.json()["error"]["message"]
    assert bad.status_code == basic.status_code == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    assert bad.json() == {"error": {"code": "unauthorized", "message": "the token is not valid"}}
    assert "Bearer TOKEN" in basic.json()["error"]["message"]


def test_first_start_makes_a_private_token_and_prints_the_url_with_it(
    server_factory: type[ServerProcess], data_dir: Path
):
    srv = server_factory(data_dir).start()
    token_file = data_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    token = srv.token
    assert token and len(token) >= 40
    assert f"jobcast serving on {srv.url}/?token={token} " in srv.output()
    with httpx.Client(base_url=srv.url, timeout=30) as api:
        assert api.get("/jobs", headers=bearer(token)).status_code == 200
        assert api.get("/jobs").status_code == 401
    srv.stop()
    again = server_factory(data_dir).start()  # the same token on every start
    assert again.token == token


def test_the_token_may_come_in_the_url_of_streams_only(tokened: ServerProcess):
    admin = httpx.Client(base_url=tokened.url, headers=bearer(TOKENS["admin"]), timeout=30)
    with admin, httpx.Client(base_url=tokened.url, timeout=30) as api:
        job = admin.post("/jobs", json={"command": "echo hi"}).json()
        wait_job(admin, job["id"])
        q = {"access_token": TOKENS["read"]}
        assert api.get(f"/jobs/{job['id']}/log", params=q).content == b"hi\n"
        events = api.get(f"/jobs/{job['id']}/events", params=q)
        assert events.status_code == 200 and b"event: complete" in events.content
        with api.stream("GET", "/stream", params=q) as r:
            assert r.status_code == 200
        refused = api.get(f"/jobs/{job['id']}", params=q)
        assert refused.status_code == 401 and "access_token" in refused.json()["error"]["message"]
        assert api.get("/stream", params={"access_token": "wrong"}).status_code == 401


def _ws(srv: ServerProcess, path: str) -> str:
    return srv.url.replace("http://", "ws://") + path


async def test_websocket_tokens_in_the_url_and_in_the_first_message(tokened: ServerProcess):
    headers = bearer(TOKENS["admin"])
    async with httpx.AsyncClient(base_url=tokened.url, headers=headers, timeout=30) as api:
        job = (await api.post("/jobs", json={"argv": ["cat"], "stdin": True})).json()
    path = f"/jobs/{job['id']}/ws"
    async with websockets.connect(_ws(tokened, f"{path}?access_token={TOKENS['read']}")) as ws:
        assert orjson.loads(await ws.recv())["seq"] == 1
    async with websockets.connect(_ws(tokened, path)) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": TOKENS["control"] + "x"}).decode())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401 and ws.close_reason == "the token is not valid"
    async with websockets.connect(_ws(tokened, path)) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": TOKENS["control"]}).decode())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4403  # control without read: nothing to see
    async with websockets.connect(_ws(tokened, path)) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": TOKENS["read"]}).decode())
        assert orjson.loads(await ws.recv())["seq"] == 1
        # read only: its input is refused, and says which scope it lacks
        await ws.send(orjson.dumps({"type": "input", "data": "x\n"}).decode())
        while "seq" in (frame := orjson.loads(await ws.recv())):
            pass
        assert (
            frame["error"]["code"] == "missing_scope" and "`control`" in frame["error"]["message"]
        )
    async with websockets.connect(_ws(tokened, "/jobs/nope/ws")) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": TOKENS["read"]}).decode())
        assert orjson.loads(await ws.recv())["error"]["code"] == "job_not_found"
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4404
    # The refused first messages are in the ledger as refused HTTP requests are; no token in it.
    async with httpx.AsyncClient(base_url=tokened.url, headers=headers, timeout=30) as api:

        async def failures() -> list[dict] | None:
            r = await api.get("/trace", params={"type": "auth.fail", "limit": 100})
            found = [e for e in r.json()["entries"] if e["detail"]["path"] == path]
            return found if len(found) >= 2 else None

        got = {(e["who"], e["outcome"]) for e in await async_wait_for(failures)}
    assert got == {("anonymous", "unauthorized"), ("control-token", "forbidden")}
    assert TOKENS["control"].encode() not in (tokened.data_dir / "trace.jsonl").read_bytes()


async def test_a_websocket_that_sends_no_token_is_closed_4401_after_the_timeout(
    tokened: ServerProcess,
):
    async with httpx.AsyncClient(base_url=tokened.url, timeout=30) as api:
        job = (
            await api.post("/jobs", json={"command": "echo hi"}, headers=bearer(TOKENS["admin"]))
        ).json()
    loop = asyncio.get_running_loop()
    async with websockets.connect(_ws(tokened, f"/jobs/{job['id']}/ws")) as ws:
        opened = loop.time()
        # nothing before the token: no event, whatever the job wrote
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert loop.time() - opened >= WS_AUTH_TIMEOUT - 0.5
        assert ws.close_code == 4401 and '"type": "auth"' in ws.close_reason
    async with websockets.connect(_ws(tokened, f"/jobs/{job['id']}/ws")) as ws:
        await ws.send('{"type": "input", "data": "x"}')  # anything else first is refused
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401


async def test_a_token_in_the_url_is_in_no_output_nor_answer(tokened: ServerProcess):
    secret = TOKENS["read"]
    wrong = "wrong-token-that-must-not-show-9876"
    async with httpx.AsyncClient(base_url=tokened.url, timeout=30) as api:
        job = (
            await api.post("/jobs", json={"command": "echo hi"}, headers=bearer(TOKENS["admin"]))
        ).json()
        answers = []
        for token in (secret, wrong):
            for path in (
                f"/jobs/{job['id']}/log",
                f"/jobs/{job['id']}/log?stream=bogus",
                f"/jobs/{job['id']}/events?after=x",
                "/jobs/nope/events",
                f"/jobs/{job['id']}/ws",
                "/jobs",
                "/nowhere",
            ):
                sep = "&" if "?" in path else "?"
                r = await api.get(f"{path}{sep}access_token={token}")
                answers.append(r.text + str(r.headers))
        answers.append((await api.get("/openapi.json")).text)
    # A malformed request with a token in its request line: one warning line in the log.
    reader, writer = await asyncio.open_connection("127.0.0.1", tokened.port)
    writer.write(f"GET /stream?access_token={secret} HTTP/1.1\r\nHost: x\r\nBad\r\n\r\n".encode())
    await writer.drain()
    await reader.read()
    writer.close()
    for text in answers:
        assert secret not in text and wrong not in text
    output = tokened.output()
    assert secret not in output and wrong not in output
    assert TOKENS["admin"] not in output  # nor any configured token


def test_log_records_lose_what_looks_like_a_token():
    record = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "GET %s from %s",
        ("/s?a=1&access_token=abc&b=2", "me"),
        None,
    )
    RedactTokens().filter(record)
    assert record.getMessage() == "GET /s?a=1&access_token=[redacted]&b=2 from me"
    record = logging.LogRecord("x", 30, __file__, 1, "sent Authorization: Bearer abc.def", (), None)
    RedactTokens().filter(record)
    assert "abc" not in record.getMessage()


def test_tokens_are_compared_in_constant_time_with_every_one(tmp_path, monkeypatch):
    import hmac

    import jobcast.api.auth as auth

    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    (tmp_path / "token").write_text("the-admin\n")
    configured = [
        TokenConfig(name="a", token="first-token", scopes=[Scope.READ]),
        TokenConfig(name="b", token="second-token", scopes=[Scope.RUN]),
    ]
    tokens = Tokens.from_settings(Settings(data_dir=tmp_path, tokens=configured))
    identity = tokens.identify("first-token")
    assert identity is not None and identity.name == "a"
    assert len(calls) == 3  # not stopped at the first match: the time tells nothing
    assert all(len(a) == len(b) == 32 for a, b in calls)  # sha256 digests, never the tokens
    admin = tokens.identify("the-admin")
    assert admin is not None and admin.name == "admin" and admin.allows(Scope.CONTROL)
    assert tokens.identify("first-token-") is None


def test_a_token_limited_to_labels_sees_and_drives_only_its_jobs(tokened: ServerProcess):
    admin = httpx.Client(base_url=tokened.url, headers=bearer(TOKENS["admin"]), timeout=30)
    infra = httpx.Client(base_url=tokened.url, headers=bearer(INFRA), timeout=30)
    with admin, infra:
        web = admin.post(
            "/jobs", json={"command": "sleep 30", "labels": {"team": "web"}, "name": "webjob"}
        ).json()
        ours = admin.post("/jobs", json={"command": "true", "labels": {"team": "infra"}}).json()
        # what it starts carries its label, whatever it asked for
        made = infra.post("/jobs", json={"command": "true", "labels": {"team": "web", "k": "v"}})
        assert made.status_code == 201
        assert made.json()["labels"] == {"team": "infra", "k": "v"}
        listed = {j["id"] for j in infra.get("/jobs").json()["jobs"]}
        assert listed == {ours["id"], made.json()["id"]}
        assert infra.get("/jobs", params={"label": "team=web"}).json()["jobs"] == []
        hidden = infra.get(f"/jobs/{web['id']}")
        absent = infra.get("/jobs/nope")
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["error"]["code"] == "job_not_found"
        assert infra.get("/jobs/webjob").status_code == 404  # by name neither
        taken = infra.post("/jobs", json={"command": "true", "name": "webjob"})
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
        assert web["id"] not in taken.text  # the holder is not this token's to know of
        for path in ("/log", "/events", "/cancel"):
            method = "POST" if path == "/cancel" else "GET"
            assert infra.request(method, f"/jobs/{web['id']}{path}").status_code == 404
        assert admin.get(f"/jobs/{web['id']}").json()["status"] == "running"  # not cancelled
        assert infra.get(f"/jobs/{ours['id']}").status_code == 200
        assert infra.post("/prune", json={"dry_run": True}).status_code == 403  # not admin
        pruned = infra.post("/prune", json={"dry_run": True}, headers=bearer(INFRA_ADMIN))
        assert pruned.status_code == 403 and "team=infra" in pruned.json()["error"]["message"]
        stats = infra.get("/stats").json()
        assert stats["per_job"] == stats["jobs"] == {}
        admin.post(f"/jobs/{web['id']}/cancel")


async def test_the_firehose_of_a_limited_token_has_only_its_jobs(tokened: ServerProcess):
    async with (
        httpx.AsyncClient(base_url=tokened.url, headers=bearer(TOKENS["admin"])) as admin,
        httpx.AsyncClient(base_url=tokened.url, headers=bearer(INFRA), timeout=30) as infra,
    ):
        events: list[dict] = []
        done = asyncio.Event()

        async def follow() -> None:
            from jobcast.protocol import SSEParser

            parser = SSEParser()
            async with infra.stream("GET", "/stream") as resp:
                assert resp.status_code == 200
                async for chunk in resp.aiter_raw():
                    for msg in parser.feed(chunk):
                        events.append(orjson.loads(msg.data))
                        if events[-1]["type"] == "complete":
                            done.set()
                            return

        reader = asyncio.create_task(follow())

        async def connected() -> bool:  # the firehose starts at the newest event
            return bool((await admin.get("/stats")).json()["clients"]["stream"])

        await async_wait_for(connected)
        web = (await admin.post("/jobs", json={"argv": ["true"], "labels": {"team": "web"}})).json()
        await collect_sse(admin, f"/jobs/{web['id']}/events")  # the web job is over first
        ours = await admin.post("/jobs", json={"argv": ["true"], "labels": {"team": "infra"}})
        await asyncio.wait_for(done.wait(), 30)
        await reader
    assert events and {e["job"] for e in events} == {ours.json()["id"]}


def test_the_open_routes_read_no_token(tokened: ServerProcess):
    with httpx.Client(base_url=tokened.url, timeout=30) as api:
        for headers in ({"Authorization": "Basic eDp5"}, bearer("wrong")):
            assert api.get("/status", headers=headers).status_code == 200
        assert api.get("/status", params={"access_token": "wrong"}).status_code == 200
