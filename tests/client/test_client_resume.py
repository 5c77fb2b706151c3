"""`events()` and `follow_log()` across dropped connections, through httpx's MockTransport: what
each reconnect asks for, and that fatal answers are raised at once, never retried."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from jobcast.client import AsyncClient, Client
from jobcast.errors import ConnectionFailed, JobNotFound
from jobcast.models import Event
from tests.client.test_client_base import sse

EVENTS = (
    [sse(1, "status")]
    + [sse(n, raw=b"line %d\n" % n) for n in range(2, 30)]
    + [sse(30, "complete")]
)


class CutStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that stops with a dropped connection after `cut` bytes (None: ends cleanly)."""

    def __init__(self, body: bytes, cut: int | None) -> None:
        self.body, self.cut = body, cut

    def _parts(self) -> Iterator[bytes]:
        body = self.body if self.cut is None else self.body[: self.cut]
        for i in range(0, len(body), 7):  # small, odd chunks: messages split everywhere
            yield body[i : i + 7]
        if self.cut is not None:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts():
            yield part


class FlakySSE:
    """Serves the job's events from `Last-Event-ID`, cutting each answer after `cut` bytes."""

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.resumed_from: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        last = request.headers.get("Last-Event-ID")
        self.resumed_from.append(last)
        assert request.url.params["encoding"] == "base64"
        after = int(last or request.url.params.get("after", "0"))
        body = b"".join(EVENTS[after:])
        cut = self.cut if len(body) > self.cut else None
        return httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, stream=CutStream(body, cut)
        )


def not_found(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"error": {"code": "job_not_found", "message": "no job 'x'"}})


def check(events: list[Event], flaky: FlakySSE) -> None:
    assert [e.seq for e in events] == list(range(1, 31))
    assert b"".join(e.raw or b"" for e in events) == b"".join(
        b"line %d\n" % n for n in range(2, 30)
    )
    assert len(flaky.resumed_from) > 5
    assert flaky.resumed_from[0] is None
    seen = [int(x or 0) for x in flaky.resumed_from[1:]]
    assert seen == sorted(seen) and seen[-1] < 30


def test_sync_events_resume_exactly_once():
    flaky = FlakySSE(cut=300)
    with Client("http://jobcast.test", transport=httpx.MockTransport(flaky)) as client:
        events = list(client.events("j1"))
    check(events, flaky)


async def test_async_events_resume_exactly_once():
    flaky = FlakySSE(cut=300)
    async with AsyncClient("http://jobcast.test", transport=httpx.MockTransport(flaky)) as client:
        events = [ev async for ev in client.events("j1")]
    check(events, flaky)


def test_fatal_answers_are_raised_not_retried():
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return not_found(request)

    with Client("http://jobcast.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(JobNotFound):
            list(client.events("x"))
        with pytest.raises(JobNotFound):
            list(client.follow_log("x"))
        with pytest.raises(LookupError):
            client.job("x")
    assert len(requests) == 3


def test_5xx_is_retried_until_the_server_answers():
    answers = iter(
        [httpx.Response(503, json={"error": {"code": "shutting_down", "message": "bye"}})]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        fallback = httpx.Response(200, stream=CutStream(b"".join(EVENTS), None))
        return next(answers, fallback)

    with Client("http://jobcast.test", transport=httpx.MockTransport(handler)) as client:
        assert len(list(client.events("j1"))) == 30


def test_unreachable_server_gives_up_after_the_reconnect_timeout():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    transport = httpx.MockTransport(refuse)
    with Client("http://jobcast.test", reconnect_timeout=0.2, transport=transport) as client:
        with pytest.raises(ConnectionFailed, match="cannot reach the jobcast server"):
            list(client.events("j1"))
        with pytest.raises(ConnectionFailed, match="start it with `jobcast serve`"):
            client.status()


def test_follow_log_resumes_at_the_offset_reached():
    data = bytes(range(256)) * 20
    offsets: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs/j1":
            job = {"id": "j1", "status": "succeeded", "argv": ["x"], "created_at": 0}
            return httpx.Response(200, content=orjson.dumps(job))
        offset = int(request.url.params.get("offset", 0))
        offsets.append(offset)
        rest = data[offset:]
        return httpx.Response(200, stream=CutStream(rest, 500 if len(rest) > 500 else None))

    with Client("http://jobcast.test", transport=httpx.MockTransport(handler)) as client:
        assert b"".join(client.follow_log("j1")) == data
    assert offsets == list(range(0, len(data), 500))
