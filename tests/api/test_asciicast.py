"""GET /jobs/{id}/asciicast: a PTY job's recording is valid asciicast v2, line by line, and
`asciinema play` plays it; a big one is streamed."""

from __future__ import annotations

import subprocess

import jsonschema_rs
import orjson

from tests.conftest import wait_job
from tests.helpers import wait_for

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
    # the resize comes before the answer it changed
    resize_at = next(i for i, (_, code, _) in enumerate(events) if code == "r")
    answer_at = next(i for i, (_, _, d) in enumerate(events) if "cols=100" in d)
    assert resize_at < answer_at

    cast = tmp_path / "rec.cast"
    cast.write_bytes(resp.content)
    played = subprocess.run(
        ["asciinema", "play", "-s", "100", str(cast)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert played.returncode == 0, played.stderr
    assert "price: €".encode() in played.stdout and b"len=5 cols=100" in played.stdout


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


def test_an_unknown_job_is_a_404(api):
    resp = api.get("/jobs/nope/asciicast")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "job_not_found"
