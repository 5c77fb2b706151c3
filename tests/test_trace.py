"""The ledger file: appends in order, a torn last line skipped and the next entry on a new line,
rotation by size with old files kept as configured, filtered reads newest first."""

from __future__ import annotations

import os
import stat

import orjson
import pytest

from jobcast.trace import TRACE_NAME, Trace


async def _opened(tmp_path, **kw) -> Trace:
    t = Trace(tmp_path, max_bytes=kw.pop("max_bytes", 1 << 20), keep_files=kw.pop("keep", 3))
    await t.open()
    return t


async def test_entries_are_lines_of_json_in_order_and_private(tmp_path):
    t = await _opened(tmp_path)
    await t.record("job.create", who="local", job="j1", detail={"argv": ["true"]})
    await t.record("job.input", who="ci", job="j1", outcome="no_stdin", detail={"bytes": 3})
    await t.close()
    path = tmp_path / TRACE_NAME
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(e["seq"], e["who"], e["op"], e["outcome"]) for e in lines] == [
        (1, "local", "job.create", "ok"),
        (2, "ci", "job.input", "no_stdin"),
    ]
    assert set(lines[0]) == {"seq", "ts", "who", "op", "job", "outcome", "detail"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_an_unknown_op_is_refused(tmp_path):
    t = await _opened(tmp_path)
    with pytest.raises(ValueError, match="unknown trace op"):
        await t.record("job.explode", who="local")
    await t.close()


async def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    t = await _opened(tmp_path)
    await t.record("job.create", who="local", job="a")
    await t.close()
    path = tmp_path / TRACE_NAME
    # the crash, mid-line
    path.write_bytes(path.read_bytes() + b'{"seq": 2, "ts": 1.0, "who": "local", "op": "job.st')
    t = await _opened(tmp_path)
    assert t.last_seq == 1  # the torn entry does not count
    assert [e["seq"] for e in await t.read()] == [1]
    await t.record("job.start", who="local", job="a")
    await t.close()
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and b'"op": "job.st\n{' in raw
    t = await _opened(tmp_path)
    assert [(e["seq"], e["op"]) for e in await t.read()] == [(2, "job.start"), (1, "job.create")]
    await t.close()


async def test_seq_goes_on_across_restarts_and_rotations(tmp_path):
    t = await _opened(tmp_path, max_bytes=4096, keep=2)
    for i in range(100):  # ~150 bytes each: several rotations
        await t.record("job.create", who="local", job=f"j{i}")
    await t.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [TRACE_NAME, f"{TRACE_NAME}.1", f"{TRACE_NAME}.2"]  # older ones deleted
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    t = await _opened(tmp_path, max_bytes=4096, keep=2)
    assert t.last_seq == 100
    await t.record("job.delete", who="local", job="j99")
    kept = await t.read(limit=10_000)
    await t.close()
    seqs = [e["seq"] for e in kept]
    # newest first, without holes, over the current file and the two kept
    assert seqs[0] == 101 and seqs == list(range(101, 101 - len(seqs), -1)) and len(seqs) > 40


async def test_reads_filter_by_op_job_and_cursor_newest_first(tmp_path):
    t = await _opened(tmp_path)
    await t.record_many(
        [
            ("job.create", "local", "a", "ok", None),
            ("job.create", "local", "b", "ok", None),
            ("job.start", "server", "a", "ok", None),
            ("job.finish", "local", "a", "succeeded", {"exit_code": 0}),
        ]
    )
    assert [e["seq"] for e in await t.read(limit=2)] == [4, 3]
    assert [e["seq"] for e in await t.read(ops=frozenset({"job.create"}))] == [2, 1]
    assert [e["seq"] for e in await t.read(job="a")] == [4, 3, 1]
    assert [e["seq"] for e in await t.read(after=2)] == [4, 3]
    ops = frozenset({"job.start", "job.finish"})
    assert [e["seq"] for e in await t.read(ops=ops, job="a", after=3)] == [4]
    assert [e.seq for e in t.after(2)] == [3, 4]  # what the firehose sends
    assert t.after(4) == []
    await t.close()


async def test_keep_files_zero_keeps_only_the_current_file(tmp_path):
    t = await _opened(tmp_path, max_bytes=4096, keep=0)
    for i in range(60):
        await t.record("job.create", who="local", job=f"j{i}")
    await t.close()
    assert [p.name for p in tmp_path.iterdir()] == [TRACE_NAME]
