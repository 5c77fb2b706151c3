"""Extractors (pure): values and groups, one match per line, `once`, streams, bad patterns."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from jobcast.extract import PIECE, Extractor, Pattern, Patterns, compile_pattern, find
from jobcast.lines import Batch


def _find(specs: list[dict], batch: Batch) -> list[tuple[str, str, int]]:
    patterns = [Pattern(Extractor(**s)) for s in specs]
    return [(m.name, m.value, m.line_no) for m in find(patterns, batch)]


def test_value_is_the_named_group_else_the_first_else_the_match():
    batch = Batch("stdout", b"v1.2 and 3\nnothing\nsize 10", 5, 3)
    specs = [
        {"name": "named", "pattern": r"v(\d)\.(?P<value>\d)"},
        {"name": "first", "pattern": r"size (\d+)"},
        {"name": "whole", "pattern": r"\d+"},
    ]
    assert _find(specs, batch) == [
        ("named", "2", 5),
        ("whole", "1", 5),  # the first match of a line only
        ("first", "10", 7),
        ("whole", "10", 7),
    ]


def test_once_and_stream():
    batch = Batch("stderr", b"err 1\nerr 2", 1, 2)
    specs = [
        {"name": "once", "pattern": r"err (\d)", "once": True},
        {"name": "out", "pattern": "err", "stream": "stdout"},
    ]
    assert _find(specs, batch) == [("once", "1", 1)]


def test_a_pattern_never_spans_lines_and_anchors_are_per_line():
    batch = Batch("stdout", b"a\nb\nab", 1, 3)
    assert _find([{"name": "x", "pattern": r"a\s*b"}, {"name": "y", "pattern": "^b$"}], batch) == [
        ("y", "b", 2),
        ("x", "ab", 3),
    ]


def test_pathological_pattern_is_linear():
    batch = Batch("stdout", b"a" * 100_000 + b"b", 1, 1)
    assert _find([{"name": "evil", "pattern": "(a+)+$"}], batch) == []


@pytest.mark.parametrize(
    ("pattern", "says"),
    [("(", "missing )"), (r"(a)\1", "backreferences"), ("(?=x)", "lookaround"), ("[z-a]", "range")],
)
def test_bad_patterns_are_refused_saying_why(pattern, says):
    with pytest.raises(ValidationError) as e:
        Extractor(name="p", pattern=pattern)
    assert says in str(e.value) and "(?m)" not in str(e.value)


def test_each_match_has_its_own_line_and_number_in_a_big_batch() -> None:
    lines = [f"line {i}" + (" ERROR x" if i % 7 == 3 else "") for i in range(1, 2000)]
    lines[0], lines[-1] = "ERROR first", "last ERROR"
    batch = Batch("stdout", "\n".join(lines).encode(), 100, len(lines))
    specs = [{"name": "err", "pattern": "ERROR"}, {"name": "end", "pattern": "$"}]
    found = list(find([Pattern(Extractor(**s)) for s in specs], batch))
    errors = [(m.line_no, m.line) for m in found if m.name == "err"]
    assert errors == [(100 + i, line) for i, line in enumerate(lines) if "ERROR" in line]
    ends = [(m.line_no, m.line) for m in found if m.name == "end"]  # empty matches, at each end
    assert ends == [(100 + i, line) for i, line in enumerate(lines)]


def test_a_batch_of_many_pieces_gives_what_each_line_alone_gives() -> None:
    # Lines of every length (long ones straddle the set pass's pieces), matches anywhere.
    rng = random.Random(16)
    words = [b"ERROR", b"x", b"v1.2", b"passed", b"7", b"", b" "]
    lines = [
        b" ".join(rng.choices(words, k=rng.randint(0, 40 if i % 50 else 9000))) for i in range(3000)
    ]
    lines += [b"", b"ERROR"]
    text = b"\n".join(lines)
    assert len(text) > 4 * PIECE
    specs = [
        {"name": "err", "pattern": r"^ERROR(.*)$"},
        {"name": "ver", "pattern": r"v(\d)\.(\d)"},
        {"name": "once", "pattern": r"(\d+) passed", "once": True},
        {"name": "empty", "pattern": r"^$"},
    ]
    got = [
        (m.name, m.value, m.line_no, m.line)
        for m in Patterns([Extractor(**s) for s in specs]).find(
            Batch("stdout", text, 1, len(lines))
        )
    ]
    want = []
    once_done = False
    for no, line in enumerate(lines, 1):
        for spec in specs:
            m = compile_pattern(spec["pattern"]).search(line)
            if m is None or (spec.get("once") and once_done):
                continue
            once_done = once_done or bool(spec.get("once"))
            value = m.group(1) if m.re.groups else m.group(0)
            want.append((spec["name"], value.decode(), no, line.decode()[: 4 * 4096]))
    assert got == want
    assert {g[0] for g in got} == {"err", "ver", "once", "empty"}
