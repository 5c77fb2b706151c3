"""Both clients against a real server: every endpoint, and resume across connections cut by a
proxy in the middle of messages."""

from __future__ import annotations

import contextlib

import pytest

from jobcast.client import AsyncClient, Client
from jobcast.errors import (
    ConnectionFailed,
    JobNotFinished,
    JobNotFound,
    NoStdin,
    ValidationFailed,
)
from jobcast.models import Event, EventType, JobStatus
from tests.client.proxy import CuttingProxy
from tests.conftest import free_port
from tests.helpers import async_wait_for, wait_for

LINES = 300
#: numbered lines at the job's own pace, so the cuts land both in the live tail and in replays
NUMBERED = (
    f"i=1; while [ $i -le {LINES} ]; do echo line $i; i=$((i+1)); sleep 0.005; done; echo bye >&2"
)
EXPECTED = b"".join(b"line %d\n" % n for n in range(1, LINES + 1))


def running(client: Client, job_id: str) -> None:
    """Input and signals need a started process: a job may still be queued right after `run`."""
    wait_for(lambda: client.job(job_id).status is JobStatus.RUNNING)


async def async_running(client: AsyncClient, job_id: str) -> None:
    async def started() -> bool:
        return (await client.job(job_id)).status is JobStatus.RUNNING

    await async_wait_for(started)


def check_stream(events: list[Event]) -> None:
    seqs = [ev.seq for ev in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a repeat"
    assert events[-1].type is EventType.COMPLETE
    out = b"".join(ev.raw or b"" for ev in events if ev.type is EventType.STDOUT)
    err = b"".join(ev.raw or b"" for ev in events if ev.type is EventType.STDERR)
    assert out == EXPECTED
    assert err == b"bye\n"


def test_sync_events_exactly_once_across_cut_connections(server):
    with Client(server.url) as direct, CuttingProxy(server.url, cut_after=2000) as proxy:
        job = direct.run(NUMBERED)
        with Client(proxy.url) as client:
            events = list(client.events(job.id))
        check_stream(events)
        assert events[0].seq == 1
        assert proxy.cuts >= 3
        # and again once finished: the replay is cut too, and still complete
        with Client(proxy.url) as client:
            check_stream(list(client.events(job.id)))


async def test_async_events_exactly_once_across_cut_connections(server):
    with CuttingProxy(server.url, cut_after=2000) as proxy:
        async with AsyncClient(server.url) as direct, AsyncClient(proxy.url) as client:
            job = await direct.run(NUMBERED, name="numbered")
            events = [ev async for ev in client.events("numbered")]
            check_stream(events)
            assert proxy.cuts >= 3
            after = events[10].seq
            rest = [ev async for ev in client.events(job.id, after=after)]
            assert [ev.seq for ev in rest] == [ev.seq for ev in events[11:]]


def test_follow_log_exact_across_cut_connections(server):
    with Client(server.url) as direct, CuttingProxy(server.url, cut_after=1500) as proxy:
        job = direct.run(NUMBERED)
        with Client(proxy.url) as client:
            assert b"".join(client.follow_log(job.id, stream="stdout")) == EXPECTED
            assert proxy.cuts >= 3
            assert client.log(job.id, stream="stderr") == b"bye\n"


async def test_async_follow_log(server):
    async with AsyncClient(server.url) as client:
        job = await client.run(["sh", "-c", "printf 'a\\377b'; sleep 0.2; printf c"])
        chunks = [chunk async for chunk in client.follow_log(job.id)]
        assert b"".join(chunks) == b"a\xffbc"
        assert await client.log(job.id, offset=1, end=3) == b"\xffb"


def test_binary_output_is_exact(server):
    with Client(server.url) as client:
        job = client.run("printf '\\000\\377\\376 ok'; printf '\\351' >&2")
        events = list(client.events(job.id))
        assert (
            b"".join(e.raw or b"" for e in events if e.type is EventType.STDOUT)
            == b"\x00\xff\xfe ok"
        )
        assert b"".join(e.raw or b"" for e in events if e.type is EventType.STDERR) == b"\xe9"
        assert all(
            e.raw is None for e in events if e.type not in (EventType.STDOUT, EventType.STDERR)
        )
        assert client.log(job.id, stream="stdout") == b"\x00\xff\xfe ok"
        # resuming past the end gives nothing, and ends
        assert list(client.events(job.id, after=events[-1].seq)) == []


def test_job_lifecycle_endpoints(server):
    with Client(server.url) as client:
        job = client.run(["cat"], stdin=True, labels={"team": "ci"}, name="reader")
        assert job.labels == {"team": "ci"}
        running(client, job.id)
        assert client.send("reader", "hello\n") == 6
        assert client.send(job.id, b"\xff", eof=True) == 1
        done = client.wait(job.id)
        assert done.status is JobStatus.SUCCEEDED
        assert done.exit_code == 0
        assert client.log(job.id) == b"hello\n\xff"
        listed = client.jobs(labels={"team": "ci"})
        assert [j.id for j in listed.jobs] == [job.id]
        assert client.jobs(status="running", labels={"team": "ci"}).jobs == []
        assert client.cancel(job.id).status is JobStatus.SUCCEEDED  # idempotent once finished
        with pytest.raises(NoStdin):
            client.send(client.run("sleep 30").id, "x")
        client.delete(job.id)
        with pytest.raises(JobNotFound):
            client.job(job.id)


def test_signal_cancel_and_status(server):
    with Client(server.url) as client:
        trapped = client.run(
            "trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.05; done"
        )
        for ev in client.events(trapped.id):
            if ev.raw == b"ready\n":
                break
        assert client.signal(trapped.id, "INT") == "SIGINT"
        assert client.wait(trapped.id).exit_code == 7
        sleeper = client.run(["sleep", "30"])
        with pytest.raises(JobNotFinished):
            client.delete(sleeper.id)
        client.cancel(sleeper.id)
        assert client.wait(sleeper.id).status is JobStatus.CANCELLED
        status = client.status()
        assert status["version"]
        assert status["uptime"] >= 0
        assert "running" in status["jobs"]
        assert client.stats()["events_sent"] > 0


async def test_async_lifecycle(server):
    async with AsyncClient(server.url) as client:
        job = await client.run("read x; echo got $x", stdin=True)
        await async_running(client, job.id)
        await client.send(job.id, "it\n", eof=True)
        done = await client.wait(job.id)
        assert done.status is JobStatus.SUCCEEDED
        assert await client.log(job.id) == b"got it\n"
        assert (await client.jobs(limit=1)).jobs[0].id == job.id
        sleeper = await client.run("sleep 30")
        await async_running(client, sleeper.id)
        await client.signal(sleeper.id, "TERM")
        assert (await client.wait(sleeper.id)).signal is not None
        assert (await client.status())["version"]
        assert "per_job" in await client.stats()
        await client.delete(job.id)
        with pytest.raises(JobNotFound):
            await client.job(job.id)


def test_not_found_everywhere(server):
    with Client(server.url) as client:
        with pytest.raises(JobNotFound):
            client.job("nope")
        with pytest.raises(JobNotFound):
            list(client.events("nope"))
        with pytest.raises(JobNotFound):
            list(client.follow_log("nope"))
        with pytest.raises(JobNotFound):
            client.connect("nope")


async def test_async_not_found(server):
    async with AsyncClient(server.url) as client:
        with pytest.raises(JobNotFound):
            await client.cancel("nope")
        with pytest.raises(JobNotFound):
            async for _ in client.events("nope"):
                pass
        with pytest.raises(JobNotFound):
            await client.connect("nope")


def test_websocket_events_and_input(server):
    with Client(server.url) as client:
        job = client.run("read x; echo got $x", stdin=True)
        running(client, job.id)
        with client.connect(job.id) as ws:
            ws.send_input("word\n")
            events = list(ws.events())
        assert events[-1].type is EventType.COMPLETE
        assert b"".join(e.raw or b"" for e in events if e.type is EventType.STDOUT) == b"got word\n"
        with client.connect(job.id, raw=True) as raw:
            assert b"".join(raw.chunks()) == b"got word\n"
        sleeper = client.run("sleep 30")
        with client.connect(sleeper.id) as ws:
            ws.send_input("nobody reads this")
            with pytest.raises(NoStdin):
                for _ in ws.events():
                    pass
            assert not ws.closed  # an answer to a message: the socket stays up
            ws.cancel()
            assert list(ws.events())[-1].data["status"] == "cancelled"
        assert ws.closed


async def test_async_websocket(server):
    async with AsyncClient(server.url) as client:
        job = await client.run(
            "trap 'echo bye; exit 3' INT; echo ready; while :; do sleep 0.05; done"
        )
        async with await client.connect(job.id) as ws:
            async for ev in ws.events():
                if ev.raw == b"ready\n":
                    await ws.signal("INT")
                if ev.type is EventType.COMPLETE:
                    assert ev.data["exit_code"] == 3
        assert ws.closed
        assert (await client.job(job.id)).exit_code == 3


def test_firehose_sees_every_job(server):
    with Client(server.url) as client:
        first = client.run("echo one")
        # from the start of time (after=0), not from now: the job may be over before we connect
        firehose = client.firehose(output=True, after=0)
        seen = []
        with contextlib.closing(firehose):
            for ev in firehose:
                if ev.job == first.id:
                    seen.append(ev)
                    if ev.type is EventType.COMPLETE:
                        break
        assert any(ev.raw == b"one\n" for ev in seen)
        assert all(ev.gid > 0 for ev in seen)


def test_unreachable_server():
    with Client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(ConnectionFailed, match="start it with `jobcast serve`"):
            client.status()


async def test_both_clients_chat_and_direct(server_factory, data_dir):
    from tests.api.test_chat import start_server

    s = start_server(server_factory, data_dir)
    with Client(s.url) as client:
        ref = client.paste("ctx").ref
        job = client.wait(client.chat("hi; ls", context=[ref]).id)
        assert job.argv[-1] == "hi; ls" and job.status == "succeeded"
        assert client.wait(client.direct("test --fast x").id).argv[-4:] == [
            "--fast",
            "--n=1",
            "x",
            "-",
        ]
        with pytest.raises(ValidationFailed, match="no template 'nope'"):
            client.direct("nope")
    async with AsyncClient(s.url) as aclient:
        job = await aclient.wait((await aclient.chat("exit 4")).id)
        assert job.exit_code == 4
        assert (await aclient.direct("test 'a b'")).argv[-2:] == ["a b", "-"]
