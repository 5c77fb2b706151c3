"""`jobcast serve` start-up: one server per data dir, a private data dir, clear failures."""

from __future__ import annotations

import os
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
    with httpx.Client(base_url=first.url, timeout=30) as api:
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
    with httpx.Client(base_url=srv.url, timeout=30) as api:
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
    result = _serve(bad, free_port())
    assert result.returncode == 2
    assert "data dir" in result.stderr and "Traceback" not in result.stderr
