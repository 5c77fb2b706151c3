"""One scripted job (stdout, stderr, an extraction, a cancel) followed live through every profile
and through jobcast's own SSE: each profile carries the same output, in the same order, with
nothing extra or missing, as its format maps jobcast's events."""

from __future__ import annotations

import asyncio
import shlex
import threading
from typing import Any

import httpx
import orjson
import socketio  # type: ignore[import-untyped]
import websockets

from tests.conftest import ServerProcess, wait_job
from tests.helpers import read_sse, run_async, wait_for

SCRIPT = "echo hello; sleep 0.3; echo warn >&2; sleep 0.3; echo done=42; sleep 60"


def _bolt(events: list[dict]) -> list[tuple[str, dict]]:
    """What bolt's stream should carry for jobcast's `events` (seed 001's types and data)."""
    out: list[tuple[str, dict]] = []
    for ev in events:
        t, d = ev["type"], ev["data"]
        if t == "status" and d["status"] != "queued":
            out.append(("status", {"status": "running" if d["status"] == "running" else "failed"}))
        elif t == "command":
            out.append(("command", {"command": shlex.join(d["argv"])}))
        elif t in ("stdout", "stderr"):
            out.append((t, {"output": d["text"]}))
        elif t == "complete":
            out.append(("error", {"status": "failed", "exitCode": None}))
    return out


def _nstar(events: list[dict]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for ev in events:
        t, d = ev["type"], ev["data"]
        if t == "command":
            out.append(("job_start", {"argv": d["argv"]}))
        elif t in ("stdout", "stderr"):
            out.append((f"job_{t}", {"chunk": d["text"]}))
        elif t == "complete":
            out.append(("job_error", {"status": "cancelled"}))
    return out


def _agents(events: list[dict]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    line = 0
    for ev in events:
        t, d = ev["type"], ev["data"]
        if t == "status":
            out.append(("state", {"status": d["status"]}))
        elif t in ("stdout", "stderr"):
            for text in d["text"].splitlines():  # this script writes whole lines per chunk
                line += 1
                out.append(("log", {"line": text, "line_num": line, "stream": t}))
        elif t == "extraction":
            out.append(("extraction", {"pattern": d["name"], "value": d["value"]}))
        elif t == "complete":
            out.append(("complete", {"status": "cancelled", "exit_code": None}))
    return out


def _cbos(events: list[dict]) -> list[tuple[str, dict]]:
    return [
        ("stream", {"session": "scripted", "data": ev["data"]["text"]})
        for ev in events
        if ev["type"] in ("stdout", "stderr")
    ]


def _nebula(events: list[dict]) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for ev in events:
        t, d = ev["type"], ev["data"]
        if t == "status":
            out.append(("run-event", {"type": "status", "data": d["status"]}))
        elif t in ("stdout", "stderr"):
            out.append(("run-event", {"type": t, "data": d["text"]}))
    return out


async def _follow_cbos(url: str, got: list, outputs: Any) -> None:
    """Every `stream` of the session until as many as jobcast's output events (`outputs()`,
    once the job has ended), then a `get_buffer` whose answer shows nothing more came."""
    async with websockets.connect(url) as ws:
        await ws.send('{"type": "subscribe", "sessions": ["*"]}')
        asked = False
        async with asyncio.timeout(60):
            while True:
                wanted = outputs()
                if not asked and wanted is not None and len(got) >= wanted:
                    await ws.send('{"type": "get_buffer", "session": "scripted"}')
                    asked = True
                try:  # woken now and then to look at `outputs()` again
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                if msg["type"] == "stream" and msg["session"] == "scripted":
                    got.append(msg)
                if msg["type"] == "buffer":
                    return


async def _follow_nebula(base: str, run: str, got: list) -> None:
    client = socketio.AsyncClient()
    done = asyncio.Event()

    def on(event: dict) -> None:
        got.append(event)
        if event["type"] == "status" and event["data"] in ("succeeded", "failed", "cancelled"):
            done.set()

    client.on("run-event", on)
    await client.connect(f"{base}?runId={run}", socketio_path="/compat/nebula/runs")
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await client.disconnect()


def _subset(data: dict, like: dict) -> dict:
    return {k: data.get(k) for k in like}


def test_one_job_through_every_profile(compat: ServerProcess, compat_api: httpx.Client) -> None:
    base = compat.url
    got: dict[str, list] = {}
    job: dict = {}

    def follow(name: str, url: str, stop=None) -> None:  # type: ignore[no-untyped-def]
        got[name] = read_sse(url, stop=stop, timeout=60)

    def nstar_done(msgs: list) -> bool:
        return any(
            orjson.loads(m.data)["type"] == "job_error"
            and orjson.loads(m.data)["data"].get("jobId") == job.get("id")
            for m in msgs
        )

    firehose = threading.Thread(
        target=follow, args=("nstar", f"{base}/compat/nstar/stream", nstar_done)
    )
    firehose.start()
    wait_for(lambda: compat_api.get("/compat/nstar/status").json()["clients"] == 1)
    # cbos follows "*": the scripted job is live (it sleeps until cancelled), so it is followed
    # from its first event whether it is created before or after the subscription is in.
    finished: dict[str, int] = {}
    ws_url = base.replace("http://", "ws://") + "/compat/cbos/ws/stream"
    cbos = threading.Thread(
        target=lambda: run_async(_follow_cbos(ws_url, got["cbos"], lambda: finished.get("n")))
    )
    got["cbos"] = []
    cbos.start()
    wait_for(lambda: compat_api.get("/compat/nstar/status").json()["clients"] == 2)
    spec = {
        "command": SCRIPT,
        "name": "scripted",
        "extract": [{"name": "done", "pattern": r"done=(\d+)"}],
    }
    job.update(compat_api.post("/jobs", json=spec).json())
    ref = job["id"]
    readers = [
        threading.Thread(target=follow, args=("jobcast", f"{base}/jobs/{ref}/events")),
        threading.Thread(
            target=follow, args=("bolt", f"{base}/compat/bolt/api/executions/{ref}/stream")
        ),
        threading.Thread(
            target=follow, args=("agents", f"{base}/compat/agents/api/agents/scripted/stream")
        ),
        threading.Thread(
            target=lambda: run_async(_follow_nebula(base, ref, got.setdefault("nebula", [])))
        ),
    ]
    for r in readers:
        r.start()
    wait_for(lambda: compat_api.get(f"/jobs/{ref}").json()["extracted"].get("done") == "42")
    compat_api.post(f"/jobs/{ref}/cancel")
    wait_job(compat_api, ref)
    for r in [*readers, firehose]:
        r.join(60)
    events = [orjson.loads(m.data) for m in got["jobcast"]]
    types = [e["type"] for e in events]
    assert {"stdout", "stderr", "extraction"} <= set(types) and types[-1] == "complete"
    finished["n"] = sum(t in ("stdout", "stderr") for t in types)
    cbos.join(60)

    bolt = [(m.event, orjson.loads(m.data)["data"]) for m in got["bolt"]][1:]  # after `start`
    expected = _bolt(events)
    assert [
        (k, _subset(d, like)) for (k, d), (_, like) in zip(bolt, expected, strict=True)
    ] == expected

    nstar = [orjson.loads(m.data) for m in got["nstar"]]
    nstar = [(m["type"], m["data"]) for m in nstar if m["type"] not in ("connected", "trace")]
    nstar = [(k, d) for k, d in nstar if d.get("jobId") == ref]
    expected = _nstar(events)
    assert [
        (k, _subset(d, like)) for (k, d), (_, like) in zip(nstar, expected, strict=True)
    ] == expected

    agents = [(m.event, orjson.loads(m.data)["data"]) for m in got["agents"]][
        1:
    ]  # after `connected`
    expected = _agents(events)
    assert [
        (k, _subset(d, like)) for (k, d), (_, like) in zip(agents, expected, strict=True)
    ] == expected

    # The same bytes: each profile's output is jobcast's, byte for byte.
    own = "".join(e["data"]["text"] for e in events if e["type"] == "stdout")
    assert own == "hello\ndone=42\n"
    assert "".join(d["output"] for k, d in bolt if k == "stdout") == own
    assert "".join(d["chunk"] for k, d in nstar if k == "job_stdout") == own
    assert (
        "".join(d["line"] + "\n" for k, d in agents if k == "log" and d["stream"] == "stdout")
        == own
    )

    cbos_got = [("stream", {"session": m["session"], "data": m["data"]}) for m in got["cbos"]]
    assert cbos_got == _cbos(events)
    assert "".join(d["data"] for _, d in cbos_got) == "".join(
        e["data"]["text"] for e in events if e["type"] in ("stdout", "stderr")
    )
    assert [("run-event", e) for e in got["nebula"]] == _nebula(events)
    assert "".join(e["data"] for e in got["nebula"] if e["type"] == "stdout") == own
