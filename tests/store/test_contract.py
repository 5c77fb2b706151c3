"""The store contract: one suite that every backend passes (the `store` fixture picks the backend)."""

from __future__ import annotations

import asyncio
import os

import pytest

from jobcast.errors import JobFinished, JobNotFinished, JobNotFound, NameTaken
from jobcast.models import EventType, JobSpec, JobStatus


async def test_create_get_and_first_event(store):
    job = await store.create_job(JobSpec(command="echo hi", name="BUILD", labels={"team": "a"}))
    assert job.status is JobStatus.QUEUED
    assert job.argv == ["/bin/sh", "-c", "echo hi"]
    assert (await store.get_job(job.id)).id == job.id
    assert (await store.get_job("BUILD")).id == job.id
    events = await store.read(job.id, 0)
    assert [(e.seq, e.type, e.data) for e in events] == [
        (1, EventType.STATUS, {"status": "queued"})
    ]


async def test_unknown_job(store):
    with pytest.raises(JobNotFound):
        await store.get_job("nope")
    with pytest.raises(LookupError):
        await store.read("nope", 0)


async def test_name_unique_while_active(store):
    job = await store.create_job(JobSpec(argv=["true"], name="X"))
    with pytest.raises(NameTaken):
        await store.create_job(JobSpec(argv=["true"], name="X"))
    await store.set_status(job.id, JobStatus.RUNNING)
    await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
    again = await store.create_job(JobSpec(argv=["true"], name="X"))
    assert (await store.get_job("X")).id == again.id


async def test_transitions_are_enforced(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    await store.set_status(job.id, JobStatus.RUNNING, started_at=1.0, pid=42)
    done = await store.set_status(job.id, JobStatus.FAILED, exit_code=3, finished_at=2.0)
    assert (done.status, done.exit_code, done.pid) == (JobStatus.FAILED, 3, 42)
    with pytest.raises(JobFinished):
        await store.set_status(job.id, JobStatus.RUNNING)
    events = await store.read(job.id, 0)
    assert [e.data.get("status") for e in events] == ["queued", "running", "failed", "failed"]
    assert events[-1].type is EventType.COMPLETE
    assert events[-1].data["exit_code"] == 3 and events[-1].data["duration"] == 1.0


async def test_output_bytes_exact_with_offsets(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    blob = os.urandom(100_000) + b"\xff\xfe"
    await store.append(job.id, EventType.STDOUT, raw=blob[:70_000])
    await store.append(job.id, EventType.STDERR, raw=b"err")
    ev = await store.append(job.id, EventType.STDOUT, raw=blob[70_000:])
    assert ev.data == {"offset": 70_000, "length": len(blob) - 70_000}
    assert await store.read_output(job.id, "stdout") == blob
    assert await store.read_output(job.id, "stderr") == b"err"
    assert await store.read_output(job.id, "stdout", 69_990, 20) == blob[69_990:70_010]
    combined = blob[:70_000] + b"err" + blob[70_000:]
    assert await store.read_output(job.id, "all") == combined
    assert await store.read_output(job.id, "all", 69_999, 5) == combined[69_999:70_004]
    assert await store.output_size(job.id, "all") == len(combined)


async def test_read_after_and_max_bytes(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    for i in range(100):
        await store.append(job.id, EventType.STDOUT, raw=b"%04d\n" % i * 100)
    events = await store.read(job.id, 50, max_bytes=2000)
    assert [e.seq for e in events] == [51, 52, 53, 54]
    assert events[0].raw == b"0049\n" * 100
    everything = await store.read(job.id, 0, max_bytes=10**9)
    assert [e.seq for e in everything] == list(range(1, 102))


async def test_read_from_storage_when_tail_is_trimmed(tmp_path):
    from jobcast.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "s", tail_bytes=1000)
    await store.open()
    try:
        job = await store.create_job(JobSpec(argv=["true"]))
        for i in range(50):
            await store.append(job.id, EventType.STDERR, raw=b"x" * 100 + b"%d" % i)
        events = await store.read(job.id, 1, max_bytes=10**9)
        assert [e.seq for e in events] == list(range(2, 52))
        assert events[3].raw == b"x" * 100 + b"3"
    finally:
        await store.close()


async def test_wait_wakes_at_append(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    waiter = asyncio.create_task(store.wait(job.id, 1))
    await asyncio.sleep(0)
    assert not waiter.done()
    await store.append(job.id, EventType.STDOUT, raw=b"x")
    await asyncio.wait_for(waiter, 1)


async def test_listen_hands_over_each_event_as_it_is_appended(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    got: list[object] = []
    assert not store.listen(job.id, 0, got.append)  # seq 1 is there already: read it instead
    assert store.listen(job.id, 1, lambda ev: got.append(ev) or len(got) < 2)
    first = await store.append(job.id, EventType.STDOUT, raw=b"a")
    assert got == [first]  # synchronously, in the append
    second = await store.append(job.id, EventType.STDOUT, raw=b"b")
    await store.append(job.id, EventType.STDOUT, raw=b"c")
    assert got == [first, second]  # it said it wanted no more after the second
    assert store.listen(job.id, 4, got.append)
    store.wake_all()  # a tick, or closing: listeners are called with None and forgotten
    await store.append(job.id, EventType.STDOUT, raw=b"d")
    assert got == [first, second, None]
    await store.set_status(job.id, JobStatus.RUNNING)
    await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
    assert not store.listen(job.id, (await store.get_job(job.id)).last_seq, got.append)


async def test_a_failing_listener_does_not_stop_the_others_nor_the_append(store, caplog):
    job = await store.create_job(JobSpec(argv=["true"]))
    got: list[object] = []

    def broken(ev: object) -> bool:
        raise RuntimeError("boom")

    assert store.listen(job.id, 1, broken)
    assert store.listen(job.id, 1, lambda ev: got.append(ev) or True)
    ev = await store.append(job.id, EventType.STDOUT, raw=b"x")
    assert got == [ev]
    assert (await store.read(job.id, 1)) == [ev]
    assert "a listener failed" in caplog.text


async def test_firehose_lifecycle_and_output(store):
    start = store.last_gid()
    job = await store.create_job(JobSpec(argv=["true"]))
    await store.append(job.id, EventType.STDOUT, raw=b"hello")
    await store.set_status(job.id, JobStatus.RUNNING)
    lifecycle = await store.read_all(start)
    assert [e.type for e in lifecycle] == [EventType.STATUS, EventType.STATUS]
    everything = await store.read_all(start, output=True)
    assert [e.type for e in everything] == [EventType.STATUS, EventType.STDOUT, EventType.STATUS]
    assert everything[-1].gid == store.last_gid()


async def test_list_filters_and_pagination(store):
    ids = [
        (await store.create_job(JobSpec(argv=["true"], labels={"n": str(i % 2)}))).id
        for i in range(5)
    ]
    page = await store.list_jobs(limit=2)
    assert [j.id for j in page.jobs] == ids[::-1][:2]
    page2 = await store.list_jobs(limit=2, cursor=page.next_cursor)
    assert [j.id for j in page2.jobs] == ids[::-1][2:4]
    odd = await store.list_jobs(label={"n": "1"})
    assert {j.id for j in odd.jobs} == {ids[1], ids[3]}
    assert (await store.list_jobs(status=JobStatus.RUNNING)).jobs == []


async def test_delete_only_when_finished(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    await store.append(job.id, EventType.STDOUT, raw=b"x")
    with pytest.raises(JobNotFinished):
        await store.delete_job(job.id)
    await store.set_status(job.id, JobStatus.CANCELLED)
    await store.delete_job(job.id)
    with pytest.raises(JobNotFound):
        await store.get_job(job.id)


async def test_durable_across_reopen(tmp_path):
    from jobcast.store.sqlite import SQLiteStore

    s1 = SQLiteStore(tmp_path / "s")
    await s1.open()
    job = await s1.create_job(JobSpec(argv=["true"]))
    await s1.set_status(job.id, JobStatus.RUNNING)
    await s1.set_process(job.id, (123, 123, 456))
    await s1.append(job.id, EventType.STDOUT, raw=b"abc")
    # bytes that reached the file but not the index, as when the server dies in between
    s1.files.append(job.id, "stdout", b"def")
    await s1.close()
    s2 = SQLiteStore(tmp_path / "s")
    await s2.open()
    try:
        assert await s2.read_output(job.id, "stdout") == b"abcdef"
        [(again, info)] = await s2.unfinished_jobs()
        assert again.id == job.id and info == (123, 123, 456)
        outs = [e.raw for e in await s2.read(job.id, 0) if e.type is EventType.STDOUT]
        assert outs == [b"abc", b"def"]
    finally:
        await s2.close()


async def test_firehose_ids_are_never_reused_after_a_delete_and_a_restart(tmp_path):
    from jobcast.store.sqlite import SQLiteStore

    s1 = SQLiteStore(tmp_path / "s")
    await s1.open()
    job = await s1.create_job(JobSpec(argv=["true"]))
    await s1.set_status(job.id, JobStatus.CANCELLED)
    newest = s1.last_gid()
    await s1.delete_job(job.id)
    await s1.close()
    s2 = SQLiteStore(tmp_path / "s")
    await s2.open()
    try:
        assert s2.last_gid() == newest
        again = await s2.create_job(JobSpec(argv=["true"]))
        assert (await s2.read(again.id, 0))[0].gid == newest + 1
    finally:
        await s2.close()


async def _finished(store, finished_at: float, output: bytes = b"", **spec):
    job = await store.create_job(JobSpec(argv=["true"], **spec))
    await store.set_status(job.id, JobStatus.RUNNING, started_at=finished_at - 1)
    if output:
        await store.append(job.id, EventType.STDOUT, raw=output)
    await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0, finished_at=finished_at)
    return job


async def test_finished_jobs_oldest_end_first_with_their_output(store):
    late = await _finished(store, 300.0, b"abc", name="late")
    early = await _finished(store, 100.0, b"de")
    await store.create_job(JobSpec(argv=["true"]))  # queued: not finished
    running = await store.create_job(JobSpec(argv=["true"]))
    await store.set_status(running.id, JobStatus.RUNNING)
    assert await store.finished_jobs() == [
        (early.id, None, 100.0, 2),
        (late.id, "late", 300.0, 3),
    ]


async def test_delete_jobs_skips_the_unfinished_and_the_unknown(store):
    done = [await _finished(store, 10.0 + i, b"x" * i) for i in range(3)]
    queued = await store.create_job(JobSpec(argv=["true"]))
    running = await store.create_job(JobSpec(argv=["true"]))
    await store.set_status(running.id, JobStatus.RUNNING)
    await store.append(running.id, EventType.STDOUT, raw=b"still here")
    ids = [done[2].id, queued.id, "nope", running.id, done[0].id]
    assert await store.delete_jobs(ids) == [done[2].id, done[0].id]
    for gone in (done[0], done[2]):
        with pytest.raises(JobNotFound):
            await store.get_job(gone.id)
        assert await store.read_output(gone.id, "all") == b""
    assert (await store.get_job(done[1].id)).status is JobStatus.SUCCEEDED
    assert (await store.get_job(queued.id)).status is JobStatus.QUEUED
    assert await store.read_output(running.id, "stdout") == b"still here"
    assert [j.id for j in await store.finished_jobs()] == [done[1].id]


async def test_disk_usage_counts_output_and_drops_with_a_delete(store):
    job = await _finished(store, 1.0, b"y" * 100_000)
    before = await store.disk_usage()
    assert before["output_bytes"] == 100_000
    assert before["data_dir_bytes"] >= before["output_bytes"] + before["db_bytes"]
    await store.delete_jobs([job.id])
    after = await store.disk_usage()
    assert after["output_bytes"] == 0
    # the write-ahead log grows with the delete's writes, until a checkpoint restarts it
    assert after["data_dir_bytes"] - after["wal_bytes"] <= (
        before["data_dir_bytes"] - before["wal_bytes"] - 100_000
    )


async def test_a_final_status_is_shown_only_with_its_complete_event(store):
    # Polled as fast as the loop allows while the final status commits: whenever the job reads
    # as finished, its `complete` event can be read too (a client may read it once and stop).
    for _ in range(50):
        job = await store.create_job(JobSpec(argv=["true"]))
        await store.set_status(job.id, JobStatus.RUNNING)
        ending = asyncio.create_task(store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0))
        while not (seen := await store.get_job(job.id)).status.is_final:
            assert seen.exit_code is None
            await asyncio.sleep(0)
        events = await store.read(job.id, seen.last_seq - 1)
        assert events and events[-1].type is EventType.COMPLETE and seen.exit_code == 0
        await ending


async def test_jobs_are_counted_by_status_and_output_appended_in_bytes(store):
    assert await store.count_jobs() == {}
    assert store.output_bytes_appended == 0
    done = await store.create_job(JobSpec(argv=["true"]))
    await store.create_job(JobSpec(argv=["true"]))
    await store.set_status(done.id, JobStatus.RUNNING)
    await store.append(done.id, EventType.STDOUT, raw=b"hello ")
    await store.append(done.id, EventType.STDERR, raw=b"world")
    await store.append(done.id, EventType.ERROR, {"message": "not output"})
    assert await store.count_jobs() == {"running": 1, "queued": 1}
    await store.set_status(done.id, JobStatus.FAILED, exit_code=1)
    assert await store.count_jobs() == {"failed": 1, "queued": 1}
    assert store.output_bytes_appended == len(b"hello world")


async def test_a_resize_event_is_the_jobs_window_size(store):
    job = await store.create_job(JobSpec(argv=["bash"], pty=True, cols=80, rows=24))
    assert (job.cols, job.rows, job.shared) == (80, 24, "control")
    await store.append(job.id, EventType.RESIZE, {"cols": 200, "rows": 50})
    job = await store.get_job(job.id)
    assert (job.cols, job.rows) == (200, 50)
    # What it was started with stays (a recording's header starts with it).
    spec = await store.job_spec(job.id)
    assert (spec.cols, spec.rows) == (80, 24)
    piped = await store.create_job(JobSpec(argv=["true"], shared="view"))
    assert (piped.cols, piped.rows, piped.shared) == (None, None, "view")


async def test_a_source_is_a_job_of_kind_source_found_by_its_path(store):
    from jobcast.models import SourceInfo

    plain = await store.create_job(JobSpec(argv=["true"]))
    assert (plain.kind, plain.source) == ("job", None)
    info = SourceInfo(path="/s/INFRA.typescript", inode=7)
    src = await store.create_job(JobSpec(argv=[info.path], name="INFRA"), source=info)
    assert src.kind == "source" and src.source == info
    assert (await store.find_source(info.path)).id == src.id
    assert await store.find_source("/s/other.typescript") is None
    listed = {j.id: j.kind for j in (await store.list_jobs()).jobs}
    assert listed == {plain.id: "job", src.id: "source"}
    assert [j.id for j in (await store.list_jobs(kind="job")).jobs] == [plain.id]
    assert [j.id for j in (await store.list_jobs(kind="source")).jobs] == [src.id]
    assert [j.kind for j, _ in await store.unfinished_jobs()] == ["job", "source"]


async def test_a_sources_new_state_and_its_notice_are_one_step(store):
    from jobcast.models import SourceInfo

    info = SourceInfo(path="/s/X.typescript", inode=1)
    job = await store.create_job(JobSpec(argv=[info.path]), source=info)
    await store.set_status(job.id, JobStatus.RUNNING)
    await store.append(job.id, EventType.STDOUT, raw=b"old")
    moved = info.model_copy(update={"inode": 2, "base": 3})
    notice = {"message": "rotated", "code": "source_rotated", "offset": 3}
    await store.set_source(job.id, moved, notice)
    assert (await store.get_job(job.id)).source == moved
    events = await store.read(job.id, 0)
    assert (events[-1].type, events[-1].data) == (EventType.ERROR, notice)
    # Without a notice: the state only.
    await store.set_source(job.id, moved.model_copy(update={"timing": "/s/X.timing"}))
    assert (await store.get_job(job.id)).source.timing == "/s/X.timing"
    assert len(await store.read(job.id, 0)) == len(events)
    # A watched source is not deleted; it says why.
    with pytest.raises(JobNotFinished, match="source"):
        await store.delete_job(job.id)


async def test_append_keeps_a_given_time(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    ev = await store.append(job.id, EventType.STDOUT, raw=b"then", ts=1234.5)
    assert ev.ts == 1234.5
    assert [e.ts for e in await store.read(job.id, 1)] == [1234.5]


async def test_the_job_keeps_the_latest_extraction_and_progress(store):
    job = await store.create_job(JobSpec(argv=["true"]))
    assert (job.extracted, job.progress) == ({}, None)
    await store.set_status(job.id, JobStatus.RUNNING)
    for name, value in (("version", "1.0"), ("url", "http://x"), ("version", "1.1")):
        data = {"name": name, "value": value, "groups": [], "line": value, "line_no": 1}
        await store.append(job.id, EventType.EXTRACTION, {**data, "stream": "stdout"})
    await store.append(job.id, EventType.PROGRESS, {"percent": 10.0})
    await store.append(job.id, EventType.PROGRESS, {"current": 2, "total": 4, "percent": 50.0})
    got = await store.get_job(job.id)
    assert got.extracted == {"version": "1.1", "url": "http://x"}
    assert got.progress == {"current": 2, "total": 4, "percent": 50.0}
    await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0)
    (listed,) = (await store.list_jobs()).jobs
    assert listed.extracted == got.extracted and listed.progress == got.progress
