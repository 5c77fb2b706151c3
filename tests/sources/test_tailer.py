"""Sources end to end: real `script -f` sessions in a watched directory, a real server following
them into its event log, followed over the SSE firehose and the per-job log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest

from jobcast.protocol import SSEParser
from tests.conftest import ServerProcess
from tests.helpers import async_wait_for, collect_sse, wait_for


def _script(path: Path, command: str, timing: Path | None = None) -> None:
    """A real `script -f` session (util-linux) recording `command` into `path`."""
    argv = ["script", "-f", "-q", "-c", command, str(path)]
    if timing is not None:
        argv[3:3] = [f"--timing={timing}"]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


def _watching(server_factory, data_dir: Path, streams: Path, *extra: str) -> ServerProcess:
    watch = ["--watch", f"{streams}/*.typescript", *extra]
    return server_factory(data_dir, extra=["--heartbeat-seconds", "1", *watch]).start()


def _source(api: httpx.Client, name: str) -> dict | None:
    jobs = api.get("/jobs", params={"name": name}).json()["jobs"]
    return jobs[0] if jobs else None


def _log(api: httpx.Client, ref: str) -> bytes:
    return api.get(f"/jobs/{ref}/log").content


def _events(server: ServerProcess, job: dict) -> list[dict]:
    """The job's events up to its `last_seq`, over SSE (a source's stream stays open)."""

    async def read() -> list[dict]:
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as c:
            return await collect_sse(c, f"/jobs/{job['id']}/events", limit=job["last_seq"])

    return asyncio.run(read())


class Firehose:
    """Every event of `/stream?output=1`, gathered in the background."""

    def __init__(self, server: ServerProcess) -> None:
        self.events: list[dict] = []
        self._client = httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60)
        self._connected = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        parser = SSEParser()
        async with self._client.stream("GET", "/stream?output=1") as resp:
            assert resp.status_code == 200
            self._connected.set()
            async for chunk in resp.aiter_raw():
                self.events += [orjson.loads(m.data) for m in parser.feed(chunk)]

    async def __aenter__(self) -> Firehose:
        await asyncio.wait_for(self._connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._client.aclose()

    def output(self, job_id: str) -> bytes:
        return b"".join(
            e["data"]["text"].encode()
            for e in self.events
            if e.get("job") == job_id and e.get("type") == "stdout"
        )


async def _asource(api: httpx.AsyncClient, name: str) -> dict | None:
    jobs = (await api.get("/jobs", params={"name": name})).json()["jobs"]
    return jobs[0] if jobs else None


async def test_a_script_session_started_after_the_subscription_streams_to_a_follower(
    server_factory, data_dir, tmp_path
):
    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "OLD.typescript").write_bytes(b"there before the server\n")
    server = _watching(server_factory, data_dir, streams)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as api:
        old = await async_wait_for(lambda: _asource(api, "OLD"))
        assert old["kind"] == "source" and old["status"] == "running"
        async with Firehose(server) as hose:
            # The file does not exist yet: it appears, as a new source, while followed.
            path = streams / "INFRA.typescript"
            await asyncio.to_thread(_script, path, "echo first-$((6*7)); sleep 0.2; echo second")
            job = await async_wait_for(lambda: _asource(api, "INFRA"))
            content = path.read_bytes()
            await async_wait_for(lambda: _async(hose.output(job["id"]) == content), within=20)
        assert b"first-42\r\nsecond\r\n" in content
        assert job["kind"] == "source" and job["source"]["path"] == str(path)
        # The firehose told of the new source's start too, as of any job's.
        statuses = [
            e["data"]["status"]
            for e in hose.events
            if e.get("job") == job["id"] and e.get("type") == "status"
        ]
        assert statuses[:2] == ["queued", "running"]
        # Stream offsets are the file's offsets: `/log` is the file, byte for byte.
        assert (await api.get("/jobs/INFRA/log")).content == content
        listed = {j["name"]: j for j in (await api.get("/jobs")).json()["jobs"]}
        assert listed["INFRA"]["kind"] == "source" and listed["OLD"]["kind"] == "source"
        # Read-only, and not a process: input, signals, cancel and delete say so.
        for method, url, body in [
            ("POST", "/jobs/INFRA/input", {"data": "ls\r"}),
            ("POST", "/jobs/INFRA/signal", {"signal": "INT"}),
            ("POST", "/jobs/INFRA/cancel", None),
            ("DELETE", "/jobs/INFRA", None),
        ]:
            r = await api.request(method, url, json=body)
            assert r.status_code == 409, (url, r.text)
            assert "source" in r.json()["error"]["message"]
        r = await api.post("/jobs/INFRA/input", json={"data": "x"})
        assert r.json()["error"]["code"] == "source_read_only"


async def _async(value: bool) -> bool:
    return value


async def test_jobs_and_sources_are_listed_apart_by_kind(server_factory, data_dir, tmp_path):
    from jobcast.client import AsyncClient, Client

    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "INFRA.typescript").write_bytes(b"tailed\n")
    server = _watching(server_factory, data_dir, streams)
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as api:
        src = await async_wait_for(lambda: _asource(api, "INFRA"))
        job = (await api.post("/jobs", json={"argv": ["true"], "name": "run"})).json()

        async def ids(**params: str) -> list[str]:
            r = await api.get("/jobs", params=params)
            assert r.status_code == 200, r.text
            return [j["id"] for j in r.json()["jobs"]]

        assert await ids() == [job["id"], src["id"]]
        assert await ids(kind="job") == [job["id"]]
        assert await ids(kind="source") == [src["id"]]
        assert await ids(kind="source", name="run") == []
        r = await api.get("/jobs", params={"kind": "file"})
        assert r.status_code == 400
        assert r.json() == {
            "error": {
                "code": "bad_request",
                "message": "unknown kind 'file'; use one of job, source",
            }
        }
    async with AsyncClient(server.url, server.token) as client:
        assert [j.id for j in (await client.jobs(kind="source")).jobs] == [src["id"]]
    with Client(server.url, server.token) as sync:
        assert [j.id for j in sync.jobs(kind="job").jobs] == [job["id"]]


def test_truncation_is_reported_and_never_read_as_new_output(server_factory, data_dir, tmp_path):
    streams = tmp_path / "streams"
    streams.mkdir()
    path = streams / "LOGS.typescript"
    path.write_bytes(b"0123456789" * 10)
    server = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        wait_for(lambda: (j := _source(api, "LOGS")) and j["stdout_bytes"] == 100)
        with path.open("wb") as f:  # `: > file`, then new content
            f.write(b"fresh\n")
        wait_for(lambda: _source(api, "LOGS")["stdout_bytes"] == 106)
        job = _source(api, "LOGS")
        notices = [e for e in _events(server, job) if e["type"] == "error"]
        assert [n["data"]["code"] for n in notices] == ["source_truncated"]
        notice = notices[0]["data"]
        assert notice["reason"] == "truncated" and notice["offset"] == 100
        assert notice["previous_size"] == 100 and notice["file_offset"] == 0
        # Offsets go on from where the old content ended; the file's offset 0 is stream's 100.
        assert _log(api, "LOGS") == b"0123456789" * 10 + b"fresh\n"
        assert job["source"]["base"] == 100
        assert api.get("/jobs/LOGS/log", params={"offset": 100}).content == b"fresh\n"


def test_a_symlink_out_of_the_root_is_refused_with_a_reason(server_factory, data_dir, tmp_path):
    streams, outside = tmp_path / "streams", tmp_path / "outside"
    streams.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("not for you\n")
    (streams / "LEAK.typescript").symlink_to(outside / "secret.txt")
    (streams / "inner.txt").write_text("inside\n")
    (streams / "OK.typescript").symlink_to(streams / "inner.txt")
    server = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        # A symlink that stays in the root is followed; the one out of it is not, ever.
        wait_for(lambda: _source(api, "OK"))
        assert _log(api, "OK") == b"inside\n"
        (streams / "LATE.typescript").symlink_to(outside / "secret.txt")
        wait_for(lambda: "LATE.typescript" in server.output())
        names = {j["name"] for j in api.get("/jobs").json()["jobs"]}
        assert names == {"OK"}
    log = server.output()
    assert f"refusing to tail {streams}/LEAK.typescript: it resolves to {outside}" in log
    assert f"refusing to tail {streams}/LATE.typescript" in log


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--watch", "{t}/streams/../outside/*.typescript"], "`..` is refused"),
        (["--watch", "{t}/outside/*.log", "--watch-roots", "{t}/streams"], "outside every"),
    ],
)
def test_patterns_outside_the_roots_stop_the_server_at_start(tmp_path, flags, expected):
    (tmp_path / "streams").mkdir()
    (tmp_path / "outside").mkdir()
    cmd = ["serve", "--port", "0", "--data-dir", str(tmp_path / "data")]
    cmd += [f.format(t=tmp_path) for f in flags]
    r = subprocess.run(
        [os.sys.executable, "-m", "jobcast", *cmd], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr and r.stderr.startswith("jobcast serve: ")
    assert not (tmp_path / "data" / "jobcast.db").exists()


def test_after_a_restart_a_source_resumes_where_it_was_nothing_repeated(
    server_factory, data_dir, tmp_path
):
    streams = tmp_path / "streams"
    streams.mkdir()
    path = streams / "AUTH.typescript"
    _script(path, "echo before-restart")
    first = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as api:
        size = path.stat().st_size
        job = wait_for(lambda: (j := _source(api, "AUTH")) and j["stdout_bytes"] == size and j)
    assert first.stop() == 0
    with path.open("ab") as f:
        f.write(b"written while no server ran\n")
    second = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=second.url, headers=second.headers, timeout=30) as api:
        with path.open("ab") as f:
            f.write(b"written after the restart\n")
        content = path.read_bytes()
        again = wait_for(
            lambda: (j := _source(api, "AUTH")) and j["stdout_bytes"] == len(content) and j
        )
        assert again["id"] == job["id"] and again["status"] == "running"
        assert _log(api, job["id"]) == content
        # Every byte in exactly one event, the events' offsets contiguous from 0.
        out = [e["data"] for e in _events(second, again) if e["type"] == "stdout"]
        assert [d["offset"] for d in out] == [
            sum(d["length"] for d in out[:i]) for i in range(len(out))
        ]
        assert "".join(d["text"] for d in out).encode() == content
        assert not [e for e in _events(second, again) if e["type"] == "error"]


def test_no_longer_watched_sources_are_finished_and_can_be_deleted(
    server_factory, data_dir, tmp_path
):
    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "GONE.typescript").write_bytes(b"x\n")
    first = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as api:
        wait_for(lambda: _source(api, "GONE"))
    first.stop()
    second = server_factory(data_dir).start()
    with httpx.Client(base_url=second.url, headers=second.headers, timeout=30) as api:
        job = _source(api, "GONE")
        assert job["status"] == "cancelled" and "no longer watched" in job["reason"]
        assert api.delete(f"/jobs/{job['id']}").status_code == 204


def test_a_recording_made_before_the_server_keeps_its_timing(server_factory, data_dir, tmp_path):
    streams = tmp_path / "streams"
    streams.mkdir()
    path, timing = streams / "REC.typescript", streams / "REC.timing"
    _script(path, "echo one; sleep 0.5; echo two; sleep 0.3; echo three", timing)
    server = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        size = path.stat().st_size
        job = wait_for(lambda: (j := _source(api, "REC")) and j["stdout_bytes"] == size and j)
    assert job["source"]["timing"] == str(timing)
    # When each chunk was written, from the timing file: its delays, ending at its mtime.
    chunks = [line.split() for line in timing.read_text().splitlines()]
    total = sum(float(d) for d, _ in chunks)
    header = path.read_bytes().index(b"\n") + 1
    expected, end, elapsed = {}, header, 0.0
    for delay, n in chunks:
        end, elapsed = end + int(n), elapsed + float(delay)
        expected[end] = timing.stat().st_mtime - (total - elapsed)
    out = [e for e in _events(server, job) if e["type"] == "stdout"]
    timed = {e["data"]["offset"] + e["data"]["length"]: e["ts"] for e in out}
    for end, ts in timed.items():
        if end in expected:
            assert ts == pytest.approx(expected[end], abs=1e-6)

    # The pauses of the session are in the events' times, not the moment the server read them.
    def when(text: str) -> float:
        return next(e["ts"] for e in out if e["data"]["text"].endswith(text))

    assert when("two\r\n") - when("one\r\n") == pytest.approx(float(chunks[1][0]), abs=1e-6)
    assert when("two\r\n") - when("one\r\n") > 0.3  # the `sleep 0.5`, not a read apart
    assert job["started_at"] - when("three\r\n") > 0  # read later, timed as it was written


def test_a_tmux_source_takes_input_when_the_config_names_its_session(
    server_factory, data_dir, tmp_path
):
    streams = tmp_path / "streams"
    streams.mkdir()
    path = streams / "SHELL.typescript"
    session = f"jobcast-src-{os.getpid()}"
    config = tmp_path / "jobcast.toml"
    config.write_text(
        f'watch = ["{streams}/*.typescript"]\n[[sources]]\npath = "{path}"\ntmux = "{session}"\n'
    )
    shell = f"script -f -q -c 'bash --norc --noprofile -i' {path}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", shell], check=True
    )
    try:
        server = server_factory(data_dir, extra=["--config", str(config)]).start()
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
            wait_for(lambda: b"$ " in _log(api, "SHELL") or b"# " in _log(api, "SHELL"))
            r = api.post("/jobs/SHELL/input", json={"data": "echo typed-$((6*7))\r"})
            assert r.status_code == 200 and r.json() == {"written": 20}
            wait_for(lambda: b"typed-42\r\n" in _log(api, "SHELL"))
            job = _source(api, "SHELL")
            inputs = [e for e in _events(server, job) if e["type"] == "input"]
            assert [e["data"] for e in inputs] == [{"length": 20}]
            r = api.post("/jobs/SHELL/input", json={"data": "x", "eof": True})
            assert r.status_code == 400 and "eof" in r.json()["error"]["message"]
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_rotation_is_reported_and_the_old_file_read_to_its_end(server_factory, data_dir, tmp_path):
    streams = tmp_path / "streams"
    streams.mkdir()
    path = streams / "ROT.typescript"
    path.write_bytes(b"old\n")
    server = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        wait_for(lambda: (j := _source(api, "ROT")) and j["stdout_bytes"] == 4)
        moved = streams / "ROT.typescript.1"  # as logrotate does: move, then a new file
        path.rename(moved)
        with moved.open("ab") as f:
            f.write(b"old-tail\n")  # the writer still had the old file open
        wait_for(lambda: _source(api, "ROT")["stdout_bytes"] == 13)
        path.write_bytes(b"new\n")
        job = wait_for(lambda: (j := _source(api, "ROT")) and j["stdout_bytes"] == 17 and j)
        assert _log(api, "ROT") == b"old\nold-tail\nnew\n"
        notices = [e["data"] for e in _events(server, job) if e["type"] == "error"]
        assert [(n["code"], n["offset"]) for n in notices] == [("source_rotated", 13)]
        assert job["source"]["base"] == 13 and job["source"]["inode"] == path.stat().st_ino
        names = {j["name"] for j in api.get("/jobs").json()["jobs"]}
        assert names == {"ROT"}  # the moved file matches no pattern: no source of its own


def test_files_of_the_same_name_in_two_directories_get_distinct_names(
    server_factory, data_dir, tmp_path
):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    long = "L" * 70
    for d in (a, b):
        (d / "INFRA.typescript").write_bytes(f"{d.name}\n".encode())
        (d / f"{long}.typescript").write_bytes(f"{d.name}\n".encode())
    flags = ["--watch", f"{a}/*.typescript", "--watch", f"{b}/*.typescript"]
    server = server_factory(data_dir, extra=flags).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        jobs = wait_for(lambda: len(j := api.get("/jobs").json()["jobs"]) == 4 and j)
        by_name = {j["name"]: j["source"]["path"] for j in jobs}
        assert sorted(by_name) == sorted(["INFRA", "INFRA-2", "L" * 64, "L" * 61 + "-2"])
        assert {by_name["INFRA"], by_name["INFRA-2"]} == {
            f"{a}/INFRA.typescript",
            f"{b}/INFRA.typescript",
        }


@pytest.mark.parametrize("change", ["truncated", "rotated"])
def test_a_file_changed_while_no_server_ran_is_reported_at_restart(
    server_factory, data_dir, tmp_path, change
):
    streams = tmp_path / "streams"
    streams.mkdir()
    path = streams / "DOWN.typescript"
    path.write_bytes(b"first life, long enough\n")
    first = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as api:
        wait_for(lambda: (j := _source(api, "DOWN")) and j["stdout_bytes"] == 24)
    first.stop()
    if change == "rotated":
        path.rename(streams / "DOWN.old")
    path.write_bytes(b"second\n")  # shorter: truncated in place, or a new inode
    second = _watching(server_factory, data_dir, streams)
    with httpx.Client(base_url=second.url, headers=second.headers, timeout=30) as api:
        job = wait_for(lambda: (j := _source(api, "DOWN")) and j["stdout_bytes"] == 31 and j)
        assert _log(api, "DOWN") == b"first life, long enough\nsecond\n"
    notices = [e["data"] for e in _events(second, job) if e["type"] == "error"]
    assert [(n["code"], n["offset"]) for n in notices] == [(f"source_{change}", 24)]
    assert "while the server was down" in notices[0]["message"]


def test_a_watched_directory_made_after_the_start_is_followed(server_factory, data_dir, tmp_path):
    later = tmp_path / "later"
    server = _watching(server_factory, data_dir, later)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        later.mkdir()
        (later / "NEW.typescript").write_bytes(b"hello\n")
        wait_for(lambda: (j := _source(api, "NEW")) and j["stdout_bytes"] == 6)
        with (later / "NEW.typescript").open("ab") as f:
            f.write(b"more\n")
        wait_for(lambda: _log(api, "NEW") == b"hello\nmore\n")
