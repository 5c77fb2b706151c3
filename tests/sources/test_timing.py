"""`script --timing` files, as util-linux writes them."""

from __future__ import annotations

import os
import subprocess

import pytest

from jobcast.sources.timing import read_timing, timing_path


def test_timing_path_is_beside_the_typescript():
    assert timing_path("/s/INFRA.typescript") == "/s/INFRA.timing"


@pytest.mark.parametrize("fmt", ["classic", "advanced"])
def test_a_real_recording_places_each_chunk_after_the_header(tmp_path, fmt):
    ts, tm = tmp_path / "R.typescript", tmp_path / "R.timing"
    argv = ["script", "-f", "-q", f"--timing={tm}", "-c", "echo a; sleep 0.2; echo bb", str(ts)]
    if fmt == "advanced":
        argv[1:1] = ["--logging-format", "advanced"]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    content = ts.read_bytes()
    timing = read_timing(str(tm), content[:4096])
    assert timing is not None
    header = content.index(b"\n") + 1
    # The timed bytes are the session's output, which follows the header.
    assert content[header : timing.ends[-1]].replace(b"\r", b"") == b"a\nbb\n"
    assert timing.times[-1] == pytest.approx(os.stat(tm).st_mtime)
    assert timing.times == sorted(timing.times)
    # Apart by the delays the file gives (the second chunk's: the `sleep`).
    delays = [float(line.split()[-2]) for line in tm.read_text().splitlines() if line[:1] in "0O"]
    assert timing.times[-1] - timing.times[0] == pytest.approx(sum(delays[1:]), abs=1e-6)
    at = timing.time_at(content.rindex(b"bb\r\n") + 1)
    assert at == timing.times[-1]
    assert timing.time_at(len(content)) is None  # the footer is not timed


def test_cuts_group_chunks_within_the_window_and_the_byte_limit(tmp_path):
    tm = tmp_path / "x.timing"
    tm.write_text("0.001 10\n0.002 10\n0.5 10\n0.001 100\n")
    timing = read_timing(str(tm), b"no header")
    assert timing is not None and timing.ends == [10, 20, 30, 130]
    # Written 2 ms apart, then 0.5 s later two 1 ms apart: two batches, each timed by its last.
    cuts = timing.cuts(0, 130, 0.01, 1000)
    assert [end for end, _ in cuts] == [20, 130]
    assert [t for _, t in cuts] == [timing.times[1], timing.times[3]]
    # At most `limit` bytes a batch, unless one chunk alone is larger.
    assert [end for end, _ in timing.cuts(0, 130, 0.01, 50)] == [20, 30, 130]
    assert [end for end, _ in timing.cuts(0, 25, 0.01, 1000)] == [20]
    assert timing.cuts(0, 5, 0.01, 1000) == []


def test_missing_or_garbled_timing_is_none_or_skipped(tmp_path):
    assert read_timing(str(tmp_path / "none.timing"), b"") is None
    bad = tmp_path / "bad.timing"
    bad.write_text("what\n-1 5\n0.1 x\n")
    assert read_timing(str(bad), b"") is None
    # A header not written whole yet: no place to put the chunks after.
    ok = tmp_path / "ok.timing"
    ok.write_text("0.1 5\n")
    assert read_timing(str(ok), b"Script started on 2026") is None
