"""`jobcast serve` start-up: one server per data dir, a private data dir, clear failures."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys

import httpx

from tests.conftest import wait_job
from tests.helpers import wait_for


def _serve(data_dir, port) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "jobcast",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_a_second_server_on_the_same_data_dir_exits_2_and_touches_nothing(
    server_factory, data_dir, tmp_path
):
    first = server_factory(data_dir).start()
    with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as api:
        job = api.post(
            "/jobs", json={"command": "echo $$ > pid; exec sleep 30", "cwd": str(tmp_path)}
        ).json()
        pid = int(wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text()))
        from tests.conftest import free_port

        second = _serve(data_dir, free_port())
        assert second.returncode == 2, second.stderr
        assert f"pid {first.proc.pid}" in second.stderr and first.url in second.stderr
        assert "Traceback" not in second.stderr
        assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"
        os.kill(pid, 0)  # still alive: the second server did not "recover" it
        api.post(f"/jobs/{job['id']}/cancel")
        assert wait_job(api, job["id"])["status"] == "cancelled"


def test_the_data_dir_is_private(server_factory, tmp_path):
    data = tmp_path / "fresh"
    srv = server_factory(data).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        job = api.post("/jobs", json={"command": "echo hi", "env": {"K": "secret"}}).json()
        wait_job(api, job["id"])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert files
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files
    ]


def test_a_data_dir_that_is_a_file_is_one_line_and_exit_2(tmp_path):
    from tests.conftest import free_port

    bad = tmp_path / "afile"
    bad.write_text("x")
    assert "data dir" in _one_line_exit_2(_serve(bad, free_port()))


def _one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("jobcast serve: ")
    assert "serving on" not in result.stdout
    return result.stderr


def test_unknown_config_keys_are_one_line_and_exit_2(tmp_path):
    from tests.conftest import free_port

    cfg = tmp_path / "jobcast.toml"
    cfg.write_text("max_runing_jobs = 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "jobcast", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={**os.environ, "JOBCAST_PORT": str(free_port())},
    )
    line = _one_line_exit_2(result)
    assert "'max_runing_jobs'" in line and str(cfg) in line
    assert not (tmp_path / ".jobcast").exists()  # refused before the data dir was made


def test_an_unreachable_redis_store_is_one_line_exit_2(tmp_path):
    from tests.conftest import free_port

    data = tmp_path / "data"
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "jobcast", "serve", "--store", url]
        + ["--port", str(free_port()), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    line = _one_line_exit_2(result)
    assert "cannot reach Redis at redis://:***@127.0.0.1" in line and "s3cret" not in line
    assert not data.exists()


def test_a_store_that_is_neither_sqlite_nor_redis_is_refused(tmp_path):
    from tests.conftest import free_port

    result = subprocess.run(
        [sys.executable, "-m", "jobcast", "serve", "--store", "postgres://db/jobs"]
        + ["--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "redis://HOST:PORT/DB" in _one_line_exit_2(result)


def test_a_port_in_use_is_one_line_exit_2_and_leaves_the_jobs_alone(
    server_factory, data_dir, tmp_path
):
    # A server killed while its job runs: the next one must find that job as it was left
    # (running, its process alive) if it cannot serve: recovery comes only after the bind.
    first = server_factory(data_dir).start()
    with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as api:
        api.post("/jobs", json={"command": "echo $$ > pid; exec sleep 30", "cwd": str(tmp_path)})
        pid = int(wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text()))
    first.kill()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            line = _one_line_exit_2(_serve(data_dir, port))
        assert line == f"jobcast serve: cannot listen on 127.0.0.1:{port}: address in use\n"
        os.kill(pid, 0)  # not recovered, so not ended
    finally:
        os.kill(pid, signal.SIGKILL)


def test_serving_on_is_printed_once_requests_are_served(server_factory, data_dir, tmp_path):
    # A slow recovery to come first: a lost job that ignores SIGTERM, ended after the grace.
    first = server_factory(data_dir).start()
    with httpx.Client(base_url=first.url, headers=first.headers, timeout=30) as api:
        command = "trap '' TERM; echo $$ > pid; exec sleep 30"
        job = api.post("/jobs", json={"command": command, "cwd": str(tmp_path)}).json()
        wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text())
        # Killed once its start is recorded: a job killed before that is still queued, and runs.
        wait_for(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "running")
    first.kill()
    cmd = [sys.executable, "-m", "jobcast", "serve", "--port", str(first.port)]
    with subprocess.Popen(
        [*cmd, "--data-dir", str(data_dir), "--kill-grace-seconds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith(f"jobcast serving on {first.url}/?token={first.token} "), line
            # at once, without a retry: the line comes only once requests are served
            with httpx.Client(base_url=first.url, headers=first.headers, timeout=10) as api:
                assert api.get("/jobs").json()["jobs"][0]["status"] == "lost"
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0


def test_serve_help_describes_every_option():
    import click

    from jobcast.cli.serve import TABLES, serve
    from jobcast.config import Settings

    options = [p for p in serve.get_params(click.Context(serve)) if isinstance(p, click.Option)]
    named = {p.name for p in options}
    # the tables ([policy], [templates], [[tokens]]) are written in the config file, not as flags
    assert set(Settings.model_fields) - set(TABLES) <= named
    assert not named & set(TABLES)
    for option in options:
        said = (option.help or "").split("[env ")[0].strip()
        assert said, f"--{option.name} has no description in `jobcast serve --help`"
