"""CORS: pages from the origins in `allowed_origins` may use the API; none by default."""

from __future__ import annotations

import httpx
import pytest
import websockets

from tests.conftest import wait_job

DASH = "https://dash.internal"


@pytest.fixture
def cors_server(server_factory, data_dir):
    return server_factory(data_dir, env={"JOBCAST_ALLOWED_ORIGINS": f'["{DASH}"]'}).start()


def test_a_listed_origin_gets_its_preflight_and_may_read_the_answers(cors_server):
    with httpx.Client(base_url=cors_server.url, headers=cors_server.headers, timeout=30) as api:
        pre = api.options(
            "/jobs",
            headers={
                "Origin": DASH,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert pre.status_code == 204
        assert pre.headers["Access-Control-Allow-Origin"] == DASH
        assert "POST" in pre.headers["Access-Control-Allow-Methods"]
        allowed = pre.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        made = api.post("/jobs", json={"command": "echo hi"}, headers={"Origin": DASH})
        assert made.status_code == 201 and made.headers["Access-Control-Allow-Origin"] == DASH
        job = wait_job(api, made.json()["id"])
        # a stream's headers go out before its handler ends: they carry it too
        with api.stream("GET", f"/jobs/{job['id']}/events", headers={"Origin": DASH}) as sse:
            assert sse.headers["Access-Control-Allow-Origin"] == DASH
            assert "Content-Range" in sse.headers["Access-Control-Expose-Headers"]
        assert (
            api.options(
                "/nope", headers={"Origin": DASH, "Access-Control-Request-Method": "GET"}
            ).status_code
            == 404
        )


async def test_a_websocket_from_a_listed_origin_is_accepted(cors_server):
    async with httpx.AsyncClient(base_url=cors_server.url, headers=cors_server.headers) as api:
        job = (await api.post("/jobs", json={"command": "echo hi"})).json()
    url = cors_server.url.replace("http", "ws") + f"/jobs/{job['id']}/ws"
    async with websockets.connect(url, origin=DASH, additional_headers=cors_server.headers) as ws:
        assert '"seq":1' in str(await ws.recv())


def test_no_cors_by_default(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        pre = api.options(
            "/jobs", headers={"Origin": DASH, "Access-Control-Request-Method": "POST"}
        )
        assert pre.status_code == 403 and "allowed_origins" in pre.json()["error"]["message"]
        same = api.get("/jobs")
        assert "Access-Control-Allow-Origin" not in same.headers
