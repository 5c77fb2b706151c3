"""The /ws wire format, sans I/O: client messages parsed, events and messages encoded."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from jobcast.api.muxcodec import MAX_BUFFER_BYTES, BadMessage, Codec
from jobcast.models import Event, EventType
from jobcast.store.tail import Tail


def payload(frame: bytes) -> dict:
    assert frame[0] == 0x81  # one text frame, FIN set
    n, start = frame[1], 2
    if n == 126:
        n, start = struct.unpack("!H", frame[2:4])[0], 4
    return orjson.loads(frame[start : start + n])


def test_commands_parse():
    c = Codec()
    sub = c.parse('{"type": "subscribe", "jobs": ["a", "*", "a"], "after": {"a": 3}, "id": 9}')
    assert (sub.type, sub.jobs, sub.after, sub.id) == ("subscribe", ("a", "*"), {"a": 3}, 9)
    send = c.parse('{"type": "send", "job": "a", "text": "hi\\n"}')
    assert (send.job, send.data) == ("a", b"hi\n")
    b64 = base64.b64encode(b"\x00\xff").decode()
    assert c.parse(f'{{"type": "send", "job": "a", "b64": "{b64}"}}').data == b"\x00\xff"
    assert c.parse('{"type": "resize", "job": "a", "cols": 100, "rows": 30}').cols == 100
    assert c.parse('{"type": "signal", "job": "a", "signal": 2}').signal == "2"
    assert c.parse('{"type": "get_buffer", "job": "a"}').max_bytes == 100_000
    assert c.parse('{"type": "interrupt", "job": "a"}').type == "interrupt"
    assert c.parse('{"type": "list"}').type == "list"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"type": 3}', "unknown message type"),
        ('{"type": "send", "job": "", "text": "x"}', "needs `job`"),
        ('{"type": "send", "job": "a", "b64": "@@"}', "not valid base64"),
        ('{"type": "resize", "job": "a", "cols": true, "rows": 5}', "between 1 and 1000"),
        ('{"type": "signal", "job": "a", "signal": false}', "needs `signal`"),
        (f'{{"type": "get_buffer", "job": "a", "max_bytes": {MAX_BUFFER_BYTES + 1}}}', "max_bytes"),
        ('{"type": "subscribe", "jobs": "*"}', "needs `jobs`"),
        ('{"type": "subscribe", "jobs": ["*"], "after": {"a": 1.5}}', "non-negative integer"),
        ('{"type": "list", "id": {"x": 1}}', "`id`"),
    ],
)
def test_bad_messages_say_what_is_wrong(raw, says):
    with pytest.raises(BadMessage, match=says):
        Codec().parse(raw)


def test_a_bad_message_keeps_its_id_for_the_answer():
    with pytest.raises(BadMessage) as e:
        Codec().parse('{"type": "send", "id": "x1"}')
    assert e.value.request_id == "x1"
    frame = payload(Codec().error(e.value, e.value.request_id))
    assert frame["type"] == "error" and frame["id"] == "x1"
    assert frame["error"]["code"] == "bad_request"


def test_an_event_is_encoded_once_and_carries_its_job_and_seq():
    tail = Tail(0, {"stdout": 0, "stderr": 0}, 1 << 20)
    ev = Event(7, "j1", EventType.STDOUT, 1.5, {"offset": 0, "length": 3}, b"\xffok")
    tail.add(ev)
    plain, b64 = Codec(), Codec(b64=True)
    frame = plain.event(ev)
    assert plain.event(ev) is frame  # cached on the event, shared by every connection
    assert payload(frame) == {
        "type": "event",
        "job": "j1",
        "seq": 7,
        "event": "stdout",
        "ts": 1.5,
        "data": {"offset": 0, "length": 3, "text": "\ufffdok"},
    }
    assert payload(b64.event(ev))["data"]["b64"] == base64.b64encode(b"\xffok").decode()
