"""The line view against a real server: GET /jobs/{id}/lines and `?view=lines` on SSE and WebSocket
give every line once, numbered across chunk boundaries, and resume where they left off."""

from __future__ import annotations

import asyncio
import sys

import orjson
import websockets

from tests.conftest import wait_job
from tests.helpers import collect_sse

# Lines cut anywhere (in the middle, at the newline), pauses between the parts so each is its own
# chunk, stderr between them, a `\r` rewrite, and a last line without its newline.
SCRIPT = r"""
import sys, time
o, e = sys.stdout, sys.stderr
def w(f, s):
    f.write(s); f.flush(); time.sleep(0.05)
w(o, "one\ntw")
w(e, "err one\n")
w(o, "o\n")
w(o, "three")
w(o, "\n")
w(o, "fo")
w(o, "ur\nfive\nsix\n")
w(e, "err tw")
w(e, "o\n")
w(o, "50%\r100%\n")
w(o, "last, no newline")
"""

EXPECTED = [
    (1, "stdout", "one"),
    (2, "stderr", "err one"),
    (3, "stdout", "two"),
    (4, "stdout", "three"),
    (5, "stdout", "four"),
    (6, "stdout", "five"),
    (7, "stdout", "six"),
    (8, "stderr", "err two"),
    (9, "stdout", "100%"),
    (10, "stdout", "last, no newline"),
]


def _start(api) -> str:
    r = api.post("/jobs", json={"argv": [sys.executable, "-c", SCRIPT]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _tuples(lines: list[dict]) -> list[tuple[int, str, str]]:
    return [(x["line_no"], x["stream"], x["line"]) for x in lines]


def test_lines_numbered_across_chunks_paged_and_filtered(api):
    job_id = _start(api)
    wait_job(api, job_id)
    # The output really came in many chunks.
    assert api.get(f"/jobs/{job_id}").json()["last_seq"] > 12
    body = api.get(f"/jobs/{job_id}/lines").json()
    assert _tuples(body["lines"]) == EXPECTED
    assert body["last_line"] == 10 and body["complete"] is True
    # Pages of 3, each resuming after the last line of the one before: each line once.
    seen, after = [], 0
    while True:
        page = api.get(f"/jobs/{job_id}/lines", params={"after_line": after, "limit": 3}).json()
        seen += page["lines"]
        after = page["last_line"]
        if page["complete"]:
            break
        assert len(page["lines"]) == 3
    assert _tuples(seen) == EXPECTED
    err = api.get(f"/jobs/{job_id}/lines", params={"stream": "stderr"}).json()["lines"]
    assert _tuples(err) == [t for t in EXPECTED if t[1] == "stderr"]
    r = api.get(f"/jobs/{job_id}/lines", params={"stream": "both"})
    assert r.status_code == 400 and "stream" in r.json()["error"]["message"]
    r = api.get(f"/jobs/{job_id}/events", params={"view": "rows"})
    assert r.status_code == 400 and "view" in r.json()["error"]["message"]


async def _sse_lines(aapi, job_id: str, headers: dict | None = None, **params) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in {"view": "lines", **params}.items())
    return await asyncio.wait_for(
        collect_sse(aapi, f"/jobs/{job_id}/events?{query}", headers=headers), 30
    )


async def test_sse_view_lines_live_and_resumed(aapi, api):
    job_id = _start(api)
    # Followed live from the start, while the job writes.
    live = await _sse_lines(aapi, job_id)
    lines = [m for m in live if "line_no" in m and "type" not in m]
    assert _tuples(lines) == EXPECTED
    assert live[-1]["type"] == "complete"
    # A reconnect with Last-Event-ID (the last line's number) gets the rest, once.
    rest = await _sse_lines(aapi, job_id, headers={"Last-Event-ID": "4"})
    assert _tuples([m for m in rest if "type" not in m]) == EXPECTED[4:]
    again = await _sse_lines(aapi, job_id, after_line=8, stream="stdout")
    assert _tuples([m for m in again if "type" not in m]) == [EXPECTED[8], EXPECTED[9]]


async def test_sse_view_lines_carries_extractions_after_their_line(aapi, api):
    extract = [{"name": "n", "pattern": r"^(f\w+)$"}, {"name": "tail", "pattern": "no newline"}]
    r = api.post("/jobs", json={"argv": [sys.executable, "-c", SCRIPT], "extract": extract})
    job_id = r.json()["id"]
    wait_job(api, job_id)
    msgs = await _sse_lines(aapi, job_id)
    order = [
        ("line", m["line_no"]) if "type" not in m else (m["type"], m["data"].get("line_no"))
        for m in msgs
    ]
    assert [o for o in order if o[0] == "extraction"] == [("extraction", n) for n in (5, 6, 10)]
    for no in (5, 6, 10):
        assert order.index(("extraction", no)) > order.index(("line", no))
    assert order[-1] == ("complete", None)
    resumed = await _sse_lines(aapi, job_id, after_line=5)
    assert [m["data"]["line_no"] for m in resumed if m.get("type") == "extraction"] == [6, 10]


async def test_ws_view_lines(server, api):
    job_id = _start(api)
    url = f"ws://127.0.0.1:{server.port}/jobs/{job_id}/ws?view=lines&after_line=2"
    frames = []
    async with websockets.connect(url, additional_headers=server.headers) as ws:
        async for msg in ws:
            frames.append(orjson.loads(msg))
    assert _tuples([f for f in frames if f["type"] == "line"]) == EXPECTED[2:]
    assert frames[-1]["type"] == "complete"


def _output_events(chunks: list[tuple[str, bytes]]) -> list:
    from jobcast.models import Event, EventType

    return [
        Event(i + 1, "job", EventType(stream), 0.0, {}, raw)
        for i, (stream, raw) in enumerate(chunks)
    ]


def test_a_resume_starts_at_a_mark_and_gives_the_same_lines(monkeypatch):
    from jobcast.api import lines

    monkeypatch.setattr(lines, "MARKS", lines.Marks(jobs=4, per_job=4))
    monkeypatch.setattr(lines, "MARK_BYTES", 64)
    body = b"".join(b"line %d\n" % i for i in range(1, 301))
    # cut at odd places, stderr between, so marks fall inside lines and between streams
    chunks = []
    for i in range(0, len(body), 37):
        chunks.append(("stdout", body[i : i + 37]))
        if i % 5 == 0:
            chunks.append(("stderr", b"e%d\n" % i))
    events = _output_events(chunks)
    full = lines.LineView("job", lines.LineQuery(), events=False).feed(events)
    assert lines.MARKS.nearest("job", 10**9) is not None
    for after_line in (0, 1, 57, 200, len(full) - 1):
        view = lines.LineView("job", lines.LineQuery(after_line), events=False)
        if after_line > 100:
            assert view.start > 0  # read from a mark, not from the start
        got = view.feed(events[view.start :])
        assert got == full[after_line:]
    # Thinned out when full: still at most per_job marks, spaced wider.
    assert len(lines.MARKS._marks["job"]) <= 4 and lines.MARKS.spacing("job") > 64


async def test_the_clients_page_lines(server, api):
    from jobcast import AsyncClient, Client

    job_id = _start(api)
    wait_job(api, job_id)
    with Client(server.url, token=server.token) as client:
        page = client.lines(job_id, after_line=8)
    assert _tuples(page["lines"]) == EXPECTED[8:] and page["complete"]
    async with AsyncClient(server.url, token=server.token) as aclient:
        page = await aclient.lines(job_id, stream="stderr", limit=1)
    assert _tuples(page["lines"]) == [EXPECTED[1]] and not page["complete"]
