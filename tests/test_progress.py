"""Progress forms read from output, and the throttle (pure)."""

from __future__ import annotations

import pytest

from jobcast.progress import Throttle, detect, scan_osc


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("::progress 42 building wheel::", {"percent": 42.0, "message": "building wheel"}),
        ("::progress 7.5%", {"percent": 7.5}),
        (
            "::progress 3/10 step three::",
            {"current": 3, "total": 10, "percent": 30.0, "message": "step three"},
        ),
        (
            "train:  42%|████▏     | 42/100 [00:01<00:02, 41.0it/s]",
            {"percent": 42.0, "current": 42, "total": 100, "message": "train"},
        ),
        (" 42%|████▏     | 42/100 [00:01<00:02]", {"percent": 42.0, "current": 42, "total": 100}),
        (
            "   ━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━ 5.2/10.4 MB 3.1 MB/s eta 0:00:02",
            {"percent": 50.0, "current": 5.2, "total": 10.4, "unit": "MB"},
        ),
        ("[#####     ]", {"percent": 50.0}),
        ("[=======>  ] copying", {"percent": 70.0}),
        ("downloading... 42%", {"percent": 42.0}),
        ("step 3/10", {"current": 3, "total": 10, "percent": 30.0}),
        ("[###       ] 3/10 files", {"percent": 30.0, "current": 3, "total": 10}),
    ],
)
def test_each_form(segment, expected):
    assert detect(segment) == expected


@pytest.mark.parametrize(
    "segment",
    [
        "hello world",
        "2026/12/03 12:00",
        "GET /api/v1/jobs 200",
        "ratio 11/10",
        "150%",
        "[ok]",
        "a/b",
    ],
)
def test_not_progress(segment):
    assert detect(segment) is None


def test_osc_9_4_states_and_a_sequence_cut_between_chunks():
    found, carry = scan_osc(b"x\x1b]9;4;1;42\x07y\x1b]9;4;3\x1b\\z\x1b]9;4;2;9")
    assert found == [{"state": "normal", "percent": 42.0}, {"state": "indeterminate"}]
    assert carry == b"\x1b]9;4;2;9"
    found, carry = scan_osc(carry + b"0\x07\x1b]9;4;0\x07")
    assert found == [{"state": "error", "percent": 90.0}, {"state": "clear"}] and carry == b""


def test_throttle_holds_the_newest_and_drops_repeats():
    t = Throttle(0.25)
    assert t.offer({"percent": 1}, 10.0) == {"percent": 1}
    assert t.offer({"percent": 2}, 10.1) is None
    assert t.offer({"percent": 3}, 10.2) is None
    assert t.due(10.2) == pytest.approx(0.05)
    assert t.take(10.3) == {"percent": 3}
    assert t.due(10.3) is None
    assert t.offer({"percent": 3}, 11.0) is None  # the same as the last given
    assert t.offer({"percent": 4}, 11.0) == {"percent": 4}
