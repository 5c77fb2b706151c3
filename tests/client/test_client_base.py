"""The clients' sans-I/O core: retry classification, backoff, the SSE resume cursor, errors."""

from __future__ import annotations

import base64
import itertools

import httpx
import orjson
import pytest

from jobcast.client.base import (
    API,
    Call,
    ClientConfig,
    event_from_json,
    make_spec,
    signal_name,
    ws_message,
)
from jobcast.client.stream import EventCursor, Reconnect, backoff, is_retryable
from jobcast.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobcastError,
    JobNotFound,
    NotFound,
    ServerShuttingDown,
    Unauthorized,
    ValidationFailed,
    error_from_payload,
)
from jobcast.models import EventType


def sse(
    seq: int, kind: str = "stdout", raw: bytes = b"x", job: str = "j1", ident: int | None = None
) -> bytes:
    """One SSE message, framed as the server frames it."""
    data: dict[str, object] = {}
    if kind in ("stdout", "stderr"):
        data = {"text": raw.decode(errors="replace"), "b64": base64.b64encode(raw).decode()}
    elif kind == "complete":
        data = {"status": "succeeded", "exit_code": 0}
    body = orjson.dumps({"seq": seq, "job": job, "type": kind, "ts": 1.5, "data": data})
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (ident or seq, kind.encode(), body)


# -- retry classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("incomplete chunked read"),
        httpx.ReadTimeout("slow"),
        ConnectionResetError(),
        TimeoutError(),
        ConnectionFailed("gone"),
        ServerShuttingDown("bye"),
        error_from_payload(502, "<html>bad gateway</html>"),
    ],
)
def test_passing_failures_are_retried(exc):
    assert is_retryable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        JobNotFound("no"),
        Unauthorized("who"),
        Forbidden("no"),
        ValidationFailed("bad"),
        Conflict("busy"),
        BadRequest("bad"),
        ValueError("a bug"),
        KeyError("a bug"),
    ],
)
def test_fatal_failures_are_not_retried(exc):
    assert not is_retryable(exc)


def test_backoff_starts_at_once_then_grows_to_a_ceiling():
    delays = list(itertools.islice(backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.25), 12))
    assert delays[0] == 0.0
    assert 0.075 <= delays[1] <= 0.1
    assert all(0 < d <= 2.0 for d in delays[1:])
    assert min(delays[-4:]) >= 2.0 * 0.75


def test_reconnect_reraises_fatal_errors_itself():
    retry = Reconnect("http://x", timeout=60)
    err = JobNotFound("no job")
    with pytest.raises(JobNotFound) as info:
        retry.delay(err)
    assert info.value is err


def test_reconnect_gives_up_after_its_timeout():
    retry = Reconnect("http://x", timeout=0)
    with pytest.raises(ConnectionFailed, match="gave up reconnecting"):
        retry.delay(httpx.ConnectError("refused"))


def test_reconnect_backoff_restarts_after_progress():
    retry = Reconnect("http://x", timeout=None)
    assert retry.delay(httpx.ReadError("cut")) == 0.0
    assert retry.delay(httpx.ReadError("cut")) > 0.0
    retry.progressed()
    assert retry.delay(None) == 0.0


# -- the SSE cursor -----------------------------------------------------------------------------


def test_cursor_survives_any_split_of_the_stream():
    body = (
        b"retry: 1000\n: connected\n\n"
        + sse(1, "status")
        + sse(2, raw=b"a\xffb")
        + sse(3, "complete")
    )
    for cut in range(len(body) + 1):
        cursor = EventCursor()
        cursor.resume()
        events = cursor.feed(body[:cut]) + cursor.feed(body[cut:])
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[1].raw == b"a\xffb"
        assert cursor.done


def test_cursor_drops_replays_and_resumes_after_the_last_seen():
    cursor = EventCursor(after=0)
    assert cursor.resume() == ([("after", "0")], {})
    assert [e.seq for e in cursor.feed(sse(1) + sse(2) + sse(3)[:10])] == [1, 2]
    params, headers = cursor.resume()  # the connection dropped mid-message
    assert params == [("after", "2")]
    assert headers == {"Last-Event-ID": "2"}
    # a server that replays from an older point: nothing is seen twice
    assert [e.seq for e in cursor.feed(sse(2) + sse(3) + sse(4, "complete"))] == [3, 4]
    assert cursor.done


def test_cursor_skips_unknown_types_but_keeps_its_place():
    cursor = EventCursor()
    events = cursor.feed(sse(1, "novelty") + sse(2))
    assert [e.seq for e in events] == [2]
    assert cursor.last == 2


def test_firehose_cursor_counts_in_global_positions():
    cursor = EventCursor(after=None, firehose=True)
    assert cursor.resume() == ([], {})  # from now
    events = cursor.feed(sse(1, job="a", ident=40) + sse(1, job="b", ident=41))
    assert [(e.job, e.gid) for e in events] == [("a", 40), ("b", 41)]
    assert cursor.resume()[1] == {"Last-Event-ID": "41"}
    assert cursor.feed(sse(1, "complete", ident=42))[0].type is EventType.COMPLETE
    assert not cursor.done  # the firehose never ends


def test_event_from_json_prefers_exact_bytes():
    raw = bytes(range(256))
    ev = event_from_json(
        {
            "seq": 4,
            "job": "j",
            "type": "stderr",
            "ts": 2,
            "data": {"text": "?", "b64": base64.b64encode(raw).decode()},
        }
    )
    assert ev.raw == raw
    assert "b64" not in ev.data
    assert (
        event_from_json(
            {"seq": 1, "job": "j", "type": "stdout", "ts": 0, "data": {"text": "é"}}
        ).raw
        == "é".encode()
    )
    assert (
        event_from_json({"seq": 2, "job": "j", "type": "status", "ts": 0, "data": {}}).raw is None
    )


# -- requests and errors ------------------------------------------------------------------------


def test_answers_map_to_the_error_classes():
    call = API.job("nope")
    payload = orjson.dumps({"error": {"code": "job_not_found", "message": "no job 'nope'"}})
    with pytest.raises(JobNotFound, match="no job 'nope'") as info:
        call.result(404, payload)
    assert isinstance(info.value, LookupError)
    with pytest.raises(NotFound):
        call.result(404, b"not json at all")
    with pytest.raises(JobcastError) as other:
        call.result(502, b"<html>")
    assert other.value.status == 502


def test_refs_cannot_escape_their_path_segment():
    assert API.job("../status").path == "/jobs/..%2Fstatus"
    assert API.cancel("a b").path == "/jobs/a%20b/cancel"


def test_request_bodies():
    assert API.send("j", b"\xff", eof=True).json == {"b64": "/w==", "eof": True}
    assert API.send("j", "hi\n", eof=False).json == {"data": "hi\n"}
    assert API.signal("j", 15).json == {"signal": "TERM"}
    assert API.log("j", "stdout", 10, end=20).headers["Range"] == "bytes=10-19"
    assert ("follow", "1") in API.log("j", "all", 5, follow=True).params
    jobs = API.jobs("running", {"a": "1", "b": "2"}, None, 10, None)
    assert jobs.params == (
        ("label", "a=1"),
        ("label", "b=2"),
        ("status", "running"),
        ("limit", "10"),
    )


def test_make_spec_validates_before_sending():
    assert make_spec("echo hi").command == "echo hi"
    assert make_spec(["echo", "hi"], name="build").argv == ["echo", "hi"]
    with pytest.raises(ValidationFailed, match="timeout"):
        make_spec("true", timeout=-1)


def test_signal_names():
    assert {signal_name(s) for s in ("INT", "sigint", "SIGINT", 2)} == {"INT"}


def test_ws_messages_carry_bytes_exactly():
    assert orjson.loads(ws_message("input", data=b"\x00\xff")) == {"type": "input", "b64": "AP8="}
    assert orjson.loads(ws_message("resize", cols=80, rows=24)) == {
        "type": "resize",
        "cols": 80,
        "rows": 24,
    }


def test_config_from_arguments_then_environment(monkeypatch):
    monkeypatch.setenv("JOBCAST_URL", "10.0.0.1:9000")
    monkeypatch.setenv("JOBCAST_TOKEN", "s3cret")
    config = ClientConfig.build(None, None, 5, None)
    assert config.url == "http://10.0.0.1:9000"
    assert config.headers()["Authorization"] == "Bearer s3cret"
    assert config.ws_url("/jobs/x/ws", {"after": "3"}) == "ws://10.0.0.1:9000/jobs/x/ws?after=3"
    explicit = ClientConfig.build("https://example.com/", "t", 5, None)
    assert explicit.url == "https://example.com"
    assert explicit.ws_url("/ws", {}).startswith("wss://")


def test_config_defaults(monkeypatch):
    config = ClientConfig.build(None, None, 5, None)
    assert config.url == "http://127.0.0.1:8080"
    assert "Authorization" not in config.headers()


def test_a_call_parses_its_answer():
    call: Call[int] = API.send("j", "x", eof=False)
    assert call.result(200, b'{"written": 2}') == 2
