"""GET /jobs/{id}/asciicast: a PTY job's recording is valid asciicast v2, line by line, and
`asciinema play` plays it; a big one is streamed."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import jsonschema_rs
import orjson

from tests.conftest import wait_job
from tests.helpers import async_wait_for, collect_sse, wait_for

#: asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): the header line
HEADER = {
    "type": "object",
    "required": ["version", "width", "height"],
    "properties": {
        "version": {"const": 2},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "timestamp": {"type": "integer"},
        "duration": {"type": "number", "minimum": 0},
        "idle_time_limit": {"type": "number", "minimum": 0},
        "command": {"type": "string"},
        "title": {"type": "string"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "theme": {"type": "object"},
    },
    "additionalProperties": False,
}
#: every line after it: [time, code, data]; a resize's data is COLSxROWS
EVENT = {
    "type": "array",
    "minItems": 3,
    "maxItems": 3,
    "prefixItems": [
        {"type": "number", "minimum": 0},
        {"enum": ["o", "i", "m", "r"]},
        {"type": "string"},
    ],
    "if": {"prefixItems": [True, {"const": "r"}]},
    "then": {"prefixItems": [True, True, {"pattern": "^[0-9]+x[0-9]+$"}]},
}

#: writes a character in two reads of the PTY, then answers a line with its length and the width
PROG = r"""
import os, sys, time
out = sys.stdout.buffer
data = "price: €".encode()
out.write(data[:-1]); out.flush(); time.sleep(0.3)
out.write(data[-1:] + b"\n"); out.flush()
line = sys.stdin.readline().strip()
print(f"len={len(line)} cols={os.get_terminal_size(0).columns}", flush=True)
"""


#: reads lines until `quit`, answering each with its length; an interrupt does not end it
LOOP = r"""
while True:
    try:
        line = input("> ")
    except KeyboardInterrupt:
        print("interrupted")
        continue
    if line == "quit":
        break
    print(f"len={len(line)}")
"""

TOKENS = """
[[tokens]]
name = "alice"
token = "tok-alice-0123456789"
scopes = ["read", "exec", "control"]
[[tokens]]
name = "bob"
token = "tok-bob-0123456789ab"
scopes = ["read", "exec", "control"]
[[tokens]]
name = "viewer"
token = "tok-viewer-0123456789"
scopes = ["read"]
"""


ALICE, BOB, VIEWER = "tok-alice-0123456789", "tok-bob-0123456789ab", "tok-viewer-0123456789"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _play(cast: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / "rec.cast"
    path.write_bytes(cast)
    played = subprocess.run(
        ["asciinema", "play", "-s", "100", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert played.returncode == 0, played.stderr
    return played.stdout


def _validated(cast: bytes) -> tuple[dict, list[list]]:
    header, *events = cast.decode().splitlines()
    jsonschema_rs.validate(HEADER, orjson.loads(header))
    lines = [orjson.loads(e) for e in events]
    for line in lines:
        jsonschema_rs.validate(EVENT, line)
    return orjson.loads(header), lines


def test_a_pty_session_is_a_valid_cast_that_asciinema_plays(api, tmp_path):
    spec = {"argv": ["python3", "-c", PROG], "pty": True, "cols": 90, "rows": 20, "name": "REC"}
    job = api.post("/jobs", json=spec).json()
    # all of the character written (in two reads) before the terminal echoes any input
    wait_for(lambda: "price: €\r\n".encode() in api.get(f"/jobs/{job['id']}/log").content)
    assert api.post(f"/jobs/{job['id']}/resize", json={"cols": 100, "rows": 30}).status_code == 200
    api.post(f"/jobs/{job['id']}/input", json={"data": "héllo\n"})
    assert wait_job(api, job["id"])["status"] == "succeeded"

    resp = api.get(f"/jobs/{job['id']}/asciicast")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-asciicast")
    header, events = _validated(resp.content)
    assert (header["width"], header["height"]) == (90, 20)
    assert header["env"] == {"TERM": "xterm-256color"} and header["title"] == "REC"
    assert header["command"].startswith("python3 -c")
    times = [t for t, _, _ in events]
    assert times == sorted(times)
    assert [d for _, code, d in events if code == "r"] == ["100x30"]
    text = "".join(d for _, code, d in events if code == "o")
    assert "price: €\r\n" in text and "\ufffd" not in text
    assert "len=5 cols=100" in text
    assert not [e for e in events if e[1] == "i"]  # its input was not recorded
    # the resize comes before the answer it changed
    resize_at = next(i for i, (_, code, _) in enumerate(events) if code == "r")
    answer_at = next(i for i, (_, _, d) in enumerate(events) if "cols=100" in d)
    assert resize_at < answer_at

    played = _play(resp.content, tmp_path)
    assert "price: €".encode() in played and b"len=5 cols=100" in played


async def test_recorded_input_is_in_the_cast_only_for_those_who_may_drive_the_job(
    server_factory, data_dir, tmp_path
):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(TOKENS)
    srv = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    alice = httpx.AsyncClient(base_url=srv.url, headers=_bearer(ALICE), timeout=30)
    async with alice:
        spec = {"argv": ["python3", "-c", LOOP], "pty": True, "shared": "view"}
        job = (await alice.post("/jobs", json={**spec, "record_input": True})).json()
        assert job["record_input"] is True
        url = f"/jobs/{job['id']}"
        live = asyncio.create_task(collect_sse(alice, f"{url}/events"))

        async def shows(text: bytes) -> bool:
            return text in (await alice.get(f"{url}/log")).content

        await async_wait_for(lambda: shows(b"> "))
        await alice.post(f"{url}/input", json={"data": "héllo\n"})
        await async_wait_for(lambda: shows(b"len=5"))
        assert (await alice.post(f"{url}/interrupt")).json() == {"interrupted": "VINTR"}
        await async_wait_for(lambda: shows(b"interrupted"))
        await alice.post(f"{url}/input", json={"data": "quit\n"})
        followed = await asyncio.wait_for(live, 30)
        assert followed[-1]["data"]["status"] == "succeeded"
        # Live and replayed streams carry an input's length, never its bytes.
        for events in (followed, await collect_sse(alice, f"{url}/events")):
            inputs = [e["data"] for e in events if e["type"] == "input"]
            assert inputs == [{"length": 7}, {"length": 1, "interrupt": True}, {"length": 5}]

        async def cast(token: str) -> tuple[list[list], bytes]:
            resp = await alice.get(f"{url}/asciicast", headers=_bearer(token))
            assert resp.status_code == 200
            return _validated(resp.content)[1], resp.content

        # Its creator may drive it (shared view-only), and so may an admin: what they typed.
        for token in (ALICE, srv.token):
            events, raw = await cast(token)
            assert [d for _, code, d in events if code == "i"] == ["héllo\n", "\x03", "quit\n"]
        assert b"len=5" in await asyncio.to_thread(_play, raw, tmp_path)
        # Another `control` token only watches this job, as a `read` one does: no `i` lines.
        for token in (BOB, VIEWER):
            watched, _ = await cast(token)
            assert watched == [e for e in events if e[1] != "i"]


def test_a_big_job_is_streamed_whole(api):
    cmd = "python3 -c \"import sys; [print('%07d' % i + 'é' * 20) for i in range(40000)]\""
    job = api.post("/jobs", json={"command": cmd}).json()
    assert wait_job(api, job["id"])["stdout_bytes"] > 1_900_000
    resp = api.get(f"/jobs/{job['id']}/asciicast")
    assert resp.headers["transfer-encoding"] == "chunked"
    header, events = _validated(resp.content)
    text = "".join(d for _, _, d in events)
    lines = text.split("\r\n")
    assert lines[:-1] == [f"{i:07d}" + "é" * 20 for i in range(40000)] and lines[-1] == ""
    assert (header["width"], header["height"]) == (80, 24)


def test_record_input_needs_something_to_type_into(api):
    resp = api.post("/jobs", json={"argv": ["true"], "record_input": True})
    assert resp.status_code == 422
    assert "`record_input` records what is typed" in resp.json()["error"]["message"]


def test_an_unknown_job_is_a_404(api):
    resp = api.get("/jobs/nope/asciicast")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"
