"""Lines out of chunks (pure): joined across chunks, `\\r` rewrites, escapes, the length cap."""

from __future__ import annotations

import random

from jobcast.lines import Splitter, final_form


def _all(splitter: Splitter, chunks: list[tuple[str, bytes]]) -> list[tuple[int, str, str]]:
    out = []
    for stream, chunk in chunks:
        batch = splitter.feed(stream, chunk)
        out += [(batch.first + i, stream, t) for i, t in enumerate(batch.lines())]
    for batch in splitter.flush():
        out += [(batch.first + i, batch.stream, t) for i, t in enumerate(batch.lines())]
    return out


def test_every_cut_of_the_output_gives_the_same_lines():
    data = "alpha\nbé\r\nprog 1\rprog 2\rdone\n\x1b[31mred\x1b[0m\n\nlast".encode()
    whole = _all(Splitter(), [("stdout", data)])
    assert whole == [
        (1, "stdout", "alpha"),
        (2, "stdout", "bé"),
        (3, "stdout", "done"),
        (4, "stdout", "red"),
        (5, "stdout", ""),
        (6, "stdout", "last"),
    ]
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 8)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert _all(Splitter(), [("stdout", p) for p in parts]) == whole


def test_streams_have_their_own_pending_line_and_share_the_numbers():
    chunks = [
        ("stdout", b"out a"),
        ("stderr", b"err 1\n"),
        ("stdout", b"nd more\n"),
        ("stderr", b"e"),
    ]
    assert _all(Splitter(), chunks) == [
        (1, "stderr", "err 1"),
        (2, "stdout", "out and more"),
        (3, "stderr", "e"),
    ]


def test_a_bar_redrawn_forever_holds_one_redraw():
    s = Splitter()
    for i in range(10_000):
        s.feed("stdout", f"\r{i:>6}/10000".encode())
    assert s.pending("stdout") == b"  9999/10000"
    (batch,) = s.flush()
    assert batch.lines() == ["  9999/10000"]


def test_long_lines_are_cut_and_marked():
    s = Splitter(max_line=10)
    b1 = s.feed("stdout", b"0123456789abcdef\nshort\n0123")
    assert b1.lines() == ["0123456789", "short"] and b1.truncated == {1}
    b2 = s.feed("stdout", b"456789xyz")
    assert b2.count == 0
    b3 = s.feed("stdout", b"more\nnext\n")
    assert b3.lines() == ["0123456789", "next"] and b3.truncated == {3}
    assert s.last == 4


def test_final_form():
    assert final_form(b"a\rb\rc\nd\r") == b"c\nd"
    assert final_form(b"\x1b]0;title\x07\x1b[1;32mok\x1b[0m \x1b(B\xc2\x9b1m") == b"ok "


def test_lines_around_the_cap_are_cut_exactly_where_longer_however_the_output_is_cut():
    rng = random.Random(11)
    for _ in range(100):
        lines = [bytes(rng.choice(b"ab") for _ in range(rng.randint(0, 25))) for _ in range(30)]
        data = b"\n".join(lines) + b"\n"
        want = [(i + 1, "stdout", line[:10].decode()) for i, line in enumerate(lines)]
        cut_ones = {i + 1 for i, line in enumerate(lines) if len(line) > 10}
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 6)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        s, truncated = Splitter(max_line=10), set()
        got = []
        for part in parts:
            batch = s.feed("stdout", part)
            got += [(batch.first + i, "stdout", t) for i, t in enumerate(batch.lines())]
            truncated |= batch.truncated
        assert got == want and truncated == cut_ones


def test_many_short_lines_past_the_cap_in_all_are_not_cut():
    batch = Splitter(max_line=10).feed("stdout", b"0123456789\n" * 5 + b"\n")
    assert batch.lines() == ["0123456789"] * 5 + [""] and not batch.truncated
