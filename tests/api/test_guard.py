"""Browser safety against a real server: no web page can start a command or read a stream."""

from __future__ import annotations

import httpx
import pytest
import websockets

from tests.conftest import wait_job


def _refused(r: httpx.Response, status: int = 403) -> str:
    assert r.status_code == status, r.text
    return str(r.json()["error"]["message"])


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_cross_site_simple_post_starts_nothing(api, tmp_path, content_type):
    marker = tmp_path / "pwned"
    body = f'{{"command": "touch {marker}"}}'
    r = api.post("/jobs", content=body, headers={"Content-Type": content_type})
    assert "application/json" in _refused(r, 415)
    r = api.post(
        "/jobs",
        content=body,
        headers={"Content-Type": content_type, "Origin": "https://evil.example"},
    )
    assert r.status_code in (403, 415)
    assert api.get("/jobs").json()["jobs"] == [] and not marker.exists()


def test_a_foreign_host_is_refused_and_starts_nothing(api, tmp_path):
    marker = tmp_path / "pwned"
    # A page whose name was rebound to 127.0.0.1: same-origin for the browser, not for us.
    headers = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
    r = api.post("/jobs", json={"command": f"touch {marker}"}, headers=headers)
    assert "allowed_hosts" in _refused(r)
    assert "allowed_hosts" in _refused(api.get("/jobs", headers={"Host": "evil.example"}))
    assert api.get("/jobs").json()["jobs"] == [] and not marker.exists()


def test_a_foreign_origin_cannot_stream_or_drive(api, server):
    job = api.post("/jobs", json={"command": "echo hi"}).json()
    wait_job(api, job["id"])
    evil = {"Origin": "https://evil.example"}
    for path in (f"/jobs/{job['id']}/events", "/stream", f"/jobs/{job['id']}/log"):
        assert "allowed_origins" in _refused(api.get(path, headers=evil))
    assert "allowed_origins" in _refused(api.post(f"/jobs/{job['id']}/cancel", headers=evil))
    # its own page may
    own = {"Origin": server.url}
    assert api.get(f"/jobs/{job['id']}/log", headers=own).content == b"hi\n"


async def test_a_foreign_origin_cannot_open_a_websocket(api, server):
    job = api.post("/jobs", json={"command": "echo hi"}).json()
    url = server.url.replace("http", "ws") + f"/jobs/{job['id']}/ws"
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(
            url, origin="https://evil.example", additional_headers=server.headers
        ):
            pass
    assert e.value.response.status_code == 403
    assert b"allowed_origins" in e.value.response.body
    async with websockets.connect(url, origin=server.url, additional_headers=server.headers) as ws:
        assert '"seq":1' in str(await ws.recv())


def test_allowed_hosts_and_origins_let_them_through(server_factory, data_dir):
    srv = server_factory(
        data_dir,
        env={
            "JOBCAST_ALLOWED_HOSTS": '["jobs.internal"]',
            "JOBCAST_ALLOWED_ORIGINS": '["https://dash.internal"]',
        },
    ).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        headers = {"Host": "jobs.internal", "Origin": "https://dash.internal"}
        r = api.post("/jobs", json={"command": "echo ok"}, headers=headers)
        assert r.status_code == 201, r.text
        wait_job(api, r.json()["id"])
        assert api.get(f"/jobs/{r.json()['id']}/log", headers=headers).content == b"ok\n"
