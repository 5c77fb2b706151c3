"""The asciicast encoder: characters split across chunks come out whole, times are relative and
never go back, resizes are `r` events, recorded input `i` events (when asked for), output
without a terminal gets the CR a terminal adds."""

from __future__ import annotations

import base64

import orjson

from jobcast.asciicast import CastEncoder, header
from jobcast.models import RECORDED_INPUT, Event, EventType, Job, JobStatus

TEXT = "a€😀é\n"


def _job(**fields) -> Job:
    base = {"id": "j1", "status": JobStatus.SUCCEEDED, "argv": ["sh", "-c", "x"]}
    return Job(**{**base, "created_at": 100.0, "started_at": 100.0, "pty": True, **fields})


def _out(seq: int, ts: float, raw: bytes, stream: EventType = EventType.STDOUT) -> Event:
    return Event(seq, "j1", stream, ts, {}, raw)


def _lines(data: bytes) -> list[list]:
    return [orjson.loads(line) for line in data.splitlines()]


def test_a_character_split_anywhere_comes_out_whole():
    raw = TEXT.encode()
    for cut in range(1, len(raw)):
        enc = CastEncoder(_job())
        # the cut falls between two batches, as between two reads of the store
        lines = _lines(enc.encode([_out(1, 100.5, raw[:cut])]))
        lines += _lines(enc.encode([_out(2, 101.0, raw[cut:])]) + enc.finish())
        assert "".join(text for _, _, text in lines) == TEXT, cut
        assert all(code == "o" for _, code, _ in lines)


def test_stdout_and_stderr_are_decoded_apart_and_bad_bytes_replaced():
    enc = CastEncoder(_job())
    events = [
        _out(1, 100.1, "€".encode()[:2]),
        _out(2, 100.2, b"err", EventType.STDERR),
        _out(3, 100.3, "€".encode()[2:] + b"\xff"),
    ]
    texts = [t for _, _, t in _lines(enc.encode(events) + enc.finish())]
    assert texts == ["err", "€\ufffd"]


def test_an_unfinished_character_at_the_end_is_one_replacement():
    enc = CastEncoder(_job())
    lines = _lines(enc.encode([_out(1, 101.0, b"ok\xe2\x82")]) + enc.finish())
    assert [t for _, _, t in lines] == ["ok", "\ufffd"]


def test_times_are_from_the_start_and_never_go_back_and_resizes_are_r_events():
    enc = CastEncoder(_job())
    events = [
        Event(1, "j1", EventType.STATUS, 100.0, {"status": "running"}),
        _out(2, 101.25, b"x"),
        Event(3, "j1", EventType.RESIZE, 102.0, {"cols": 120, "rows": 40}),
        _out(4, 101.5, b"y"),  # a clock that went back
        Event(5, "j1", EventType.INPUT, 103.0, {"length": 3}),  # its content is not recorded
    ]
    assert _lines(enc.encode(events)) == [[1.25, "o", "x"], [2.0, "r", "120x40"], [2.0, "o", "y"]]


def test_recorded_input_is_i_events_when_asked_for_and_its_characters_whole():
    def typed(seq: int, ts: float, raw: bytes) -> Event:
        data = {"length": len(raw), RECORDED_INPUT: base64.b64encode(raw).decode()}
        return Event(seq, "j1", EventType.INPUT, ts, data)

    e = "é".encode()
    events = [
        typed(1, 101.0, b"h" + e[:1]),  # a character cut between two sends
        _out(2, 101.5, b"h"),
        typed(3, 102.0, e[1:] + b"\r"),
        Event(4, "j1", EventType.INPUT, 103.0, {"length": 1}),  # sent before it recorded
    ]
    assert _lines(CastEncoder(_job(), inputs=True).encode(events)) == [
        [1.0, "i", "h"],
        [1.5, "o", "h"],
        [2.0, "i", "é\r"],
    ]
    assert _lines(CastEncoder(_job()).encode(events)) == [[1.5, "o", "h"]]


def test_output_without_a_terminal_gets_carriage_returns():
    enc = CastEncoder(_job(pty=False))
    assert _lines(enc.encode([_out(1, 100.0, b"a\nb\r\n")])) == [[0.0, "o", "a\r\nb\r\n"]]


def test_the_header():
    head = orjson.loads(header(_job(name="INFRA", command="make"), 90, 20, "screen"))
    assert head == {
        "version": 2,
        "width": 90,
        "height": 20,
        "timestamp": 100,
        "command": "make",
        "env": {"TERM": "screen"},
        "title": "INFRA",
    }
    assert orjson.loads(header(_job(), 80, 24, "xterm"))["command"] == "sh -c x"
