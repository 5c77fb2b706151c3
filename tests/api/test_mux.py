"""WS /ws: many jobs on one connection; PTY sessions driven through it; bad messages; sharing."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from tests.conftest import ServerProcess
from tests.helpers import async_wait_for

WAIT = 30.0


def ws_url(server: ServerProcess, path: str = "/ws") -> str:
    return server.url.replace("http://", "ws://") + path


class Mux:
    """A /ws client: sends messages, and receives each until what the test waits for."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        #: every message received, in order
        self.seen: list[dict[str, Any]] = []
        #: each job's output so far
        self.output: dict[str, str] = {}

    async def send(self, **msg: Any) -> None:
        await self.ws.send(orjson.dumps(msg).decode())

    async def recv(self) -> dict[str, Any]:
        msg: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
        self.seen.append(msg)
        if msg["type"] == "event" and msg["event"] == "stdout":
            self.output[msg["job"]] = self.output.get(msg["job"], "") + msg["data"]["text"]
        return msg

    async def until(self, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while not pred(msg := await self.recv()):
            pass
        return msg

    async def answer(self, kind: str) -> dict[str, Any]:
        return await self.until(lambda m: m["type"] == kind)

    async def output_has(self, job: str, pattern: str) -> re.Match[str]:
        while (found := re.search(pattern, self.output.get(job, ""))) is None:
            await self.recv()
        return found

    def events(self, job: str) -> list[dict[str, Any]]:
        return [m for m in self.seen if m["type"] == "event" and m["job"] == job]


def connect(server: ServerProcess, **headers: str) -> websockets.connect:
    return websockets.connect(
        ws_url(server), additional_headers=headers or server.headers, max_size=1 << 24
    )


async def opened(ws: websockets.ClientConnection) -> Mux:
    mux = Mux(ws)
    first = await mux.recv()
    assert first["type"] == "jobs"
    assert (await mux.recv())["type"] == "available"
    return mux


async def pty_job(aapi: Any, argv: list[str], **spec: Any) -> dict[str, Any]:
    r = await aapi.post("/jobs", json={"argv": argv, "pty": True, **spec})
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


LEN_PROGRAM = "line = input(); print('len', len(line))"
WINCH_PROGRAM = """
import os, signal, subprocess
signal.signal(signal.SIGWINCH, lambda *a: print('winch', *os.get_terminal_size(), flush=True))
print('ready', flush=True)
input()
subprocess.run(['tput', 'cols'])
"""


async def test_a_pty_program_reads_what_is_sent_and_its_answer_streams_back(server, aapi):
    job = await pty_job(aapi, ["python3", "-c", LEN_PROGRAM])
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=[job["id"]], id=1)
        subscribed = await mux.answer("subscribed")
        assert subscribed["jobs"] == [job["id"]] and subscribed["id"] == 1
        await mux.send(type="send", job=job["id"], text="hello, world\n")
        result = await mux.answer("send_result")
        assert result == {"type": "send_result", "job": job["id"], "success": True, "written": 13}
        await mux.output_has(job["id"], r"len 12\r\n")
        await mux.until(lambda m: m.get("event") == "complete")
    events = mux.events(job["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["status"] == "succeeded"


async def test_resize_reaches_the_program_and_stays_on_the_job(server, aapi):
    job = await pty_job(aapi, ["python3", "-c", WINCH_PROGRAM], cols=80, rows=24)
    assert (job["cols"], job["rows"]) == (80, 24)
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=[job["id"]])
        await mux.output_has(job["id"], r"ready")
        await mux.send(type="resize", job=job["id"], cols=123, rows=40)
        assert (await mux.answer("resize_result"))["success"] is True
        await mux.output_has(job["id"], r"winch 123 40")  # SIGWINCH, and the size it reads
        shown = (await aapi.get(f"/jobs/{job['id']}")).json()
        assert (shown["cols"], shown["rows"]) == (123, 40)
        await mux.send(type="send", job=job["id"], text="\n")
        await mux.output_has(job["id"], r"\n123\r\n")  # `tput cols`
        await mux.until(lambda m: m.get("event") == "complete")
    resized = [e for e in mux.events(job["id"]) if e["event"] == "resize"]
    assert [e["data"] for e in resized] == [{"cols": 123, "rows": 40}]


async def test_interrupt_stops_the_foreground_command_and_the_shell_answers(server, aapi):
    job = await pty_job(aapi, ["bash", "--norc", "--noprofile", "-i"], env={"PS1": "$ "})
    ref = job["id"]
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=[ref])
        await mux.send(type="send", job=ref, text="echo one-$((2+3)); sleep 100\n")
        await mux.output_has(ref, r"one-5\r\n")
        await mux.send(type="interrupt", job=ref)
        result = await mux.answer("interrupt_result")
        assert result["success"] is True and result["interrupted"] == "VINTR"
        await mux.send(type="send", job=ref, text="echo alive-$((6*7))\n")
        await mux.output_has(ref, r"alive-42\r\n")
        # The same through HTTP, once more.
        await mux.send(type="send", job=ref, text="echo two-$((1+1)); sleep 100\n")
        await mux.output_has(ref, r"two-2\r\n")
        r = await aapi.post(f"/jobs/{ref}/interrupt")
        assert r.status_code == 200 and r.json() == {"interrupted": "VINTR"}
        await mux.send(type="send", job=ref, text="echo back-$((5*5))\n")
        await mux.output_has(ref, r"back-25\r\n")
        assert (await aapi.get(f"/jobs/{ref}")).json()["status"] == "running"
        await mux.send(type="send", job=ref, text="exit 3\n")
        done = await mux.until(lambda m: m.get("event") == "complete")
    assert done["data"]["exit_code"] == 3  # the shell lived to exit by itself


async def test_star_follows_jobs_started_after_it(server, aapi):
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=["*"])
        assert (await mux.answer("subscribed"))["all"] is True
        assert (await aapi.get("/stats")).json()["clients"]["mux"] == 1  # counted by transport
        jobs = [
            (await aapi.post("/jobs", json={"command": f"echo late-{i}"})).json()["id"]
            for i in range(3)
        ]
        for job in jobs:
            await mux.output_has(job, r"late-\d\n")
        while sum(m.get("event") == "complete" for m in mux.seen) < len(jobs):
            await mux.recv()
    for job in jobs:
        events = mux.events(job)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["event"] == "status" and events[-1]["event"] == "complete"


COUNTER = "for i in $(seq 1 40); do echo line-$i; sleep 0.02; done"


async def test_a_cut_connection_resumes_every_job_exactly_once(server, aapi):
    jobs = [(await aapi.post("/jobs", json={"command": COUNTER})).json() for _ in range(3)]
    ids = [j["id"] for j in jobs]
    async with connect(server) as ws:
        first = await opened(ws)
        await first.send(type="subscribe", jobs=["*"])
        await first.answer("subscribed")
        # Some of each job's events, then the connection breaks off mid-stream.
        for job in ids:
            await first.output_has(job, r"line-3\n")
        ws.transport.abort()  # type: ignore[attr-defined]
    cursors = {job: max(e["seq"] for e in first.events(job)) for job in ids}
    # While the client is away, the jobs go on (and end).
    for job in ids:
        await async_wait_for(
            lambda j=job: _finished(aapi, j),  # type: ignore[misc]
            WAIT,
        )
    async with connect(server) as ws:
        second = await opened(ws)
        await second.send(type="subscribe", jobs=["*"], after=cursors)
        subscribed = await second.answer("subscribed")
        assert subscribed["after"] == cursors  # finished jobs too, named in `after`
        while sum(m.get("event") == "complete" for m in second.seen) < len(ids):
            await second.recv()
    for job in ids:
        seqs = [e["seq"] for e in first.events(job)] + [e["seq"] for e in second.events(job)]
        last = (await aapi.get(f"/jobs/{job}")).json()["last_seq"]
        assert seqs == list(range(1, last + 1))
        lines = (first.output.get(job, "") + second.output.get(job, "")).split()
        assert lines == [f"line-{i}" for i in range(1, 41)]


async def _finished(aapi: Any, job: str) -> bool:
    return (await aapi.get(f"/jobs/{job}")).json()["status"] == "succeeded"


async def test_get_buffer_gives_the_end_of_the_output_and_where_it_ends(server, aapi, api):
    job = (await aapi.post("/jobs", json={"command": "printf 'abcdef'; printf 'é' >&2"})).json()
    async with connect(server) as ws:
        mux = await opened(ws)
        await async_wait_for(lambda: _finished(aapi, job["id"]), WAIT)
        await mux.send(type="get_buffer", job=job["id"], max_bytes=4)
        buffer = await mux.answer("buffer")
        assert buffer["data"] == "ef" + "é" and buffer["offset"] == 4
        await mux.send(type="subscribe", jobs=[job["id"]], after={job["id"]: buffer["seq"] - 1})
        last = await mux.until(lambda m: m["type"] == "event")
    assert last["event"] == "complete" and last["seq"] == buffer["seq"]


async def test_bad_messages_get_an_error_and_the_connection_stays_up(server, aapi):
    job = (await aapi.post("/jobs", json={"argv": ["sleep", "30"]})).json()
    async with connect(server) as other, connect(server) as ws:
        bystander = await opened(other)
        await bystander.send(type="subscribe", jobs=[job["id"]])
        mux = await opened(ws)
        for bad, says in [
            ("not json", "not valid JSON"),
            ("[1, 2]", "JSON object"),
            ('{"type": "launch"}', "unknown message type 'launch'"),
            ('{"type": "send", "text": "x"}', "needs `job`"),
            ('{"type": "send", "job": "x"}', "needs `text`"),
            ('{"type": "resize", "job": "x", "cols": 0, "rows": 5}', "between 1 and 1000"),
            ('{"type": "subscribe"}', "needs `jobs`"),
            ('{"type": "subscribe", "jobs": ["*"], "after": {"x": -1}}', "non-negative"),
            ('{"type": "get_buffer", "job": "x", "max_bytes": "all"}', "max_bytes"),
        ]:
            await ws.send(bad)
            error = await mux.answer("error")
            assert error["error"]["code"] == "bad_request" and says in error["error"]["message"]
        await mux.send(type="subscribe", jobs=["nope", job["id"]], id="s1")
        assert (await mux.answer("subscribed"))["jobs"] == [job["id"]]
        error = await mux.answer("error")
        assert error["jobs"] == ["nope"] and error["id"] == "s1"
        assert error["error"]["code"] == "job_not_found"
        await mux.send(type="interrupt", job="nope")
        result = await mux.answer("interrupt_result")
        assert result["success"] is False and result["error"]["code"] == "job_not_found"
        await mux.send(type="send", job=job["id"], text="x")  # no stdin, no terminal
        result = await mux.answer("send_result")
        assert result["success"] is False and result["error"]["code"] == "no_stdin"

        # A flood: past the rate, one error a second says why, and the rest is dropped.
        await asyncio.gather(*(ws.send('{"type": "nonsense"}') for _ in range(3000)))
        await mux.send(type="list", id="after-flood")
        flooded = await mux.until(
            lambda m: m["type"] == "error" and m["error"]["code"] == "too_many_requests"
        )
        assert "messages a second" in flooded["error"]["message"]
        # Once the rate falls, it is heard again (reading meanwhile, or pongs would wait).
        for attempt in range(100):
            await mux.send(type="list", id=f"later-{attempt}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await mux.until(lambda m, a=attempt: m.get("id") == f"later-{a}")
                    break
        else:
            raise AssertionError("the connection never took a message again after the flood")

        # A frame past the limit closes this connection, saying why; nothing else.
        with pytest.raises((websockets.ConnectionClosed, ConnectionResetError)):
            await ws.send("x" * (10 << 20))
            while True:
                await mux.recv()
        assert ws.close_code == 1009  # "message too big"

        await bystander.send(type="list", id="still")
        assert (await bystander.until(lambda m: m.get("id") == "still"))["type"] == "jobs"
    assert (await aapi.get("/status")).status_code == 200


VIEW_CONFIG = """
[[tokens]]
name = "alice"
token = "tok-alice-0123456789"
scopes = ["read", "exec", "control"]
[[tokens]]
name = "bob"
token = "tok-bob-0123456789"
scopes = ["read", "control"]
[[tokens]]
name = "viewer"
token = "tok-viewer-0123456789"
scopes = ["read"]
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_viewers_and_controllers(server_factory, data_dir: Path, tmp_path: Path):
    import httpx

    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(VIEW_CONFIG)
    server = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    alice, bob = bearer("tok-alice-0123456789"), bearer("tok-bob-0123456789")
    viewer = bearer("tok-viewer-0123456789")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        spec = {"argv": ["cat"], "pty": True, "shared": "view"}
        r = await http.post("/jobs", json=spec, headers=alice)
        assert r.status_code == 201 and r.json()["shared"] == "view"
        job = r.json()["id"]
        shared = await http.post("/jobs", json={"argv": ["cat"], "pty": True}, headers=alice)
        open_job = shared.json()["id"]

        async with connect(server, **viewer) as v, connect(server, **bob) as b:
            watcher, other = await opened(v), await opened(b)
            await watcher.send(type="subscribe", jobs=[job])
            await watcher.answer("subscribed")
            # A viewer's terminal answering a query (DA1, DA2, cursor position): dropped.
            await watcher.send(type="send", job=job, text="\x1b[?1;2c\x1b[>0;276;0c\x1b[12;40R")
            result = await watcher.answer("send_result")
            assert result["success"] is False and result["error"]["code"] == "read_only"
            await watcher.send(type="send", job=job, text="typed\n")
            result = await watcher.answer("send_result")
            assert result["error"]["code"] == "missing_scope"
            await watcher.send(type="interrupt", job=job)
            assert (await watcher.answer("interrupt_result"))["success"] is False
            # `control`, but not the creator of a view-only job: watches too.
            for kind, extra in [("send", {"text": "bob\n"}), ("resize", {"cols": 9, "rows": 9})]:
                await other.send(type=kind, job=job, **extra)
                result = await other.answer(f"{kind}_result")
                assert result["success"] is False and result["error"]["code"] == "forbidden"
            r = await http.post(f"/jobs/{job}/input", json={"data": "bob\n"}, headers=bob)
            assert r.status_code == 403
            # ... while the job shared for control takes bob's input.
            await other.send(type="send", job=open_job, text="bob\n")
            assert (await other.answer("send_result"))["success"] is True
            # The creator types; the viewer sees it.
            r = await http.post(f"/jobs/{job}/input", json={"data": "alice\n"}, headers=alice)
            assert r.status_code == 200
            await watcher.output_has(job, r"alice\r\n")
            assert "bob" not in watcher.output[job] and "typed" not in watcher.output[job]
            # An admin may too.
            r = await http.post(
                f"/jobs/{job}/input", json={"data": "root\n"}, headers=server.headers
            )
            assert r.status_code == 200
            await watcher.output_has(job, r"root\r\n")
        # The per-job WebSocket holds to the same, and drops a viewer's terminal replies unsaid.
        url = ws_url(server, f"/jobs/{job}/ws?format=raw")
        async with websockets.connect(url, additional_headers=viewer) as raw:
            await raw.send(b"\x1b[?1;2c")
            await raw.send(orjson.dumps({"type": "interrupt"}).decode())
            while isinstance(frame := await asyncio.wait_for(raw.recv(), WAIT), bytes):
                pass
            error = orjson.loads(frame)
            assert error["type"] == "error" and error["error"]["code"] == "missing_scope"
        for ref in (job, open_job):
            await http.post(f"/jobs/{ref}/cancel", headers=server.headers)


BIG = "import sys\nfor i in range(300_000): sys.stdout.write(f'{i:09d}\\n')"


async def test_a_connection_that_does_not_read_falls_behind_and_catches_up(
    server_factory, data_dir: Path
):
    # The default heartbeat (15 s): a client that reads nothing for a while is not dropped.
    server = server_factory(data_dir).start()
    async with connect(server) as ws, connect(server) as fast_ws:
        slow, fast = await opened(ws), await opened(fast_ws)
        for mux in (slow, fast):
            await mux.send(type="subscribe", jobs=["*"])
            await mux.answer("subscribed")
        import httpx

        async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:
            jobs = [
                (await http.post("/jobs", json={"argv": ["python3", "-c", BIG]})).json()["id"]
                for _ in range(2)
            ]
            # One reads along; the other reads nothing until both jobs have ended.
            while sum(m.get("event") == "complete" for m in fast.seen) < 2:
                await fast.recv()
            while sum(m.get("event") == "complete" for m in slow.seen) < 2:
                await slow.recv()
    want = "".join(f"{i:09d}\n" for i in range(300_000))
    for job in jobs:
        for mux in (slow, fast):
            assert mux.output[job] == want
            seqs = [e["seq"] for e in mux.events(job)]
            assert seqs == list(range(1, len(seqs) + 1))


LIMITED_CONFIG = """
[[tokens]]
name = "infra"
token = "tok-infra-0123456789"
scopes = ["read", "exec", "control"]
labels = { team = "infra" }
"""


async def test_a_token_limited_to_labels_sees_only_its_jobs(
    server_factory, data_dir: Path, tmp_path: Path
):
    import httpx

    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(LIMITED_CONFIG)
    server = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    infra = bearer("tok-infra-0123456789")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        hidden = await http.post("/jobs", json={"argv": ["sleep", "30"]}, headers=server.headers)
        hidden_id = hidden.json()["id"]
        async with connect(server, **infra) as ws:
            mux = Mux(ws)
            listed = await mux.answer("jobs")
            assert hidden_id not in [j["id"] for j in listed["jobs"]]
            await mux.send(type="subscribe", jobs=["*", hidden_id])
            subscribed = await mux.answer("subscribed")
            assert subscribed["jobs"] == []
            assert (await mux.answer("error"))["jobs"] == [hidden_id]
            await http.post("/jobs", json={"command": "echo other"}, headers=server.headers)
            mine = (await http.post("/jobs", json={"command": "echo mine"}, headers=infra)).json()
            await mux.output_has(mine["id"], "mine\n")
            await mux.send(type="cancel", job=hidden_id)
            assert (await mux.answer("cancel_result"))["error"]["code"] == "job_not_found"
        assert {m["job"] for m in mux.seen if m["type"] == "event"} == {mine["id"]}
        await http.post(f"/jobs/{hidden_id}/cancel", headers=server.headers)


async def test_at_shutdown_the_jobs_last_events_go_out_then_1001(server, aapi):
    job = (await aapi.post("/jobs", json={"argv": ["sleep", "300"]})).json()
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=["*"])
        await mux.until(lambda m: m.get("event") == "command")
        await asyncio.to_thread(server.stop)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await mux.recv()
    assert ws.close_code == 1001
    last = mux.events(job["id"])[-1]
    assert last["event"] == "complete" and last["data"]["status"] == "cancelled"


async def test_the_token_may_come_in_the_first_message(server):
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": server.token}).decode())
        mux = await opened(ws)
        await mux.send(type="list", id=7)
        assert (await mux.until(lambda m: m.get("id") == 7))["type"] == "jobs"
    async with websockets.connect(ws_url(server)) as ws:
        await ws.send('{"type": "subscribe", "jobs": ["*"]}')
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
    assert ws.close_code == 4401


async def test_a_script_session_in_a_watched_directory_streams_to_star(
    server_factory, data_dir: Path, tmp_path: Path
):
    import subprocess

    streams = tmp_path / "streams"
    streams.mkdir()
    watch = ["--watch", f"{streams}/*.typescript", "--heartbeat-seconds", "1"]
    server = server_factory(data_dir, extra=watch).start()
    async with connect(server) as ws:
        mux = await opened(ws)
        await mux.send(type="subscribe", jobs=["*"])
        await mux.answer("subscribed")
        # The file does not exist yet: it appears, as a new source, while subscribed.
        path = streams / "INFRA.typescript"
        argv = ["script", "-f", "-q", "-c", "echo first-$((6*7)); echo second", str(path)]
        await asyncio.to_thread(subprocess.run, argv, check=True, capture_output=True, timeout=30)
        content = path.read_bytes()
        status = await mux.until(lambda m: m.get("event") == "status")
        source = status["job"]
        await mux.output_has(source, "first-42\r\nsecond\r\n")
        while mux.output[source].encode() != content:
            await mux.recv()
        await mux.send(type="list", id="l")
        listed = await mux.until(lambda m: m.get("id") == "l")
        assert {j["name"]: j["kind"] for j in listed["jobs"]}["INFRA"] == "source"
        # Read-only without a session in the config: said, and the connection goes on.
        await mux.send(type="send", job="INFRA", text="ls\r")
        result = await mux.answer("send_result")
        assert result["success"] is False and result["error"]["code"] == "source_read_only"
        await mux.send(type="interrupt", job="INFRA")
        assert (await mux.answer("interrupt_result"))["error"]["code"] == "source_read_only"
