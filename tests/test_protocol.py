"""The sans-I/O wire formats: event JSON, SSE frames and parser, WebSocket frames and messages."""

from __future__ import annotations

import base64

import orjson
import pytest

from jobcast.errors import BadRequest
from jobcast.models import RECORDED_INPUT, Event, EventType
from jobcast.protocol import (
    SSEParser,
    event_json,
    parse_ws_command,
    sse_comment,
    sse_frame,
    ws_frame,
)


class _Unbounded:
    def charge(self, ev: Event, nbytes: int) -> bool:
        return True


def _out(raw: bytes) -> Event:
    return Event(5, "j1", EventType.STDOUT, 1.5, {"offset": 10, "length": len(raw)}, raw, gid=42)


def test_event_json_decodes_output_with_replacement_and_caches():
    ev = _out(b"ok\xff\n")
    data = orjson.loads(event_json(ev))
    assert data == {
        "seq": 5,
        "job": "j1",
        "type": "stdout",
        "ts": 1.5,
        "data": {"offset": 10, "length": 4, "text": "ok\ufffd\n"},
    }
    assert sse_frame(ev) is not sse_frame(ev)  # no meter pays for a copy: not kept
    ev.meter = _Unbounded()
    assert sse_frame(ev) is sse_frame(ev)  # encoded once for every client
    b64 = orjson.loads(event_json(ev, b64=True))["data"]["b64"]
    assert base64.b64decode(b64) == b"ok\xff\n"


def test_recorded_input_never_leaves_in_an_event():
    data = {"length": 6, RECORDED_INPUT: base64.b64encode(b"secret").decode()}
    ev = Event(7, "j1", EventType.INPUT, 2.0, data)
    for encoded in (event_json(ev), event_json(ev, b64=True), sse_frame(ev, firehose=True)):
        assert b"length" in encoded and RECORDED_INPUT.encode() not in encoded
    assert ev.data == data  # the log keeps it, for the recording


def test_sse_frame_round_trips_through_the_parser_in_any_split():
    events = [
        _out(b"line one\nline two\r\n"),
        Event(6, "j1", EventType.COMPLETE, 2.0, {"status": "succeeded"}),
    ]
    wire = b": comment\n\n" + b"".join(sse_frame(e) for e in events) + sse_comment("ping")
    for step in (1, 3, 7, len(wire)):
        parser = SSEParser()
        msgs = [m for i in range(0, len(wire), step) for m in parser.feed(wire[i : i + step])]
        assert [(m.id, m.event) for m in msgs] == [("5", "stdout"), ("6", "complete")]
        assert orjson.loads(msgs[0].data)["data"]["text"] == "line one\nline two\r\n"
        assert parser.last_id == "6"
    assert sse_frame(events[0], firehose=True).startswith(b"id: 42\n")


def test_sse_parser_handles_crlf_and_multiline_data():
    msgs = SSEParser().feed(b"event: x\r\ndata: a\r\ndata: b\r\nid: 9\r\n\r\n")
    assert [(m.event, m.data, m.id) for m in msgs] == [("x", "a\nb", "9")]


def test_ws_frame_lengths():
    assert ws_frame(b"hi") == b"\x81\x02hi"
    assert ws_frame(b"x" * 200, binary=True)[:4] == b"\x82\x7e\x00\xc8"
    assert ws_frame(b"x" * 70000)[:2] == b"\x81\x7f" and len(ws_frame(b"x" * 70000)) == 70010


def test_ws_commands_parse_or_say_what_is_wrong():
    assert parse_ws_command('{"type": "input", "data": "ls\\n"}').data == b"ls\n"
    assert parse_ws_command('{"type": "input", "b64": "AAE="}').data == b"\x00\x01"
    assert parse_ws_command('{"type": "resize", "cols": 100, "rows": 30}').cols == 100
    assert parse_ws_command('{"type": "signal", "signal": "INT"}').signal == "INT"
    assert parse_ws_command('{"type": "cancel"}').type == "cancel"
    for bad, words in [
        ("nope", "JSON"),
        ("[1]", "object"),
        ('{"type": "x"}', "unknown"),
        ('{"type": "resize", "cols": 0, "rows": 1}', "between"),
        ('{"type": "input"}', "data"),
        ('{"type": "input", "b64": "!!"}', "base64"),
    ]:
        with pytest.raises(BadRequest, match=words):
            parse_ws_command(bad)
