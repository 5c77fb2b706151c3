"""The server's lifespan: restart after SIGKILL (durable output, lost jobs), graceful SIGTERM."""

from __future__ import annotations

import hashlib
import random
import signal
import socket
import subprocess

import httpx
import orjson

from jobcast.protocol import SSEParser
from tests.conftest import wait_job
from tests.helpers import wait_for


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigkilled_server_restarts_with_output_intact_and_running_job_lost(
    server_factory, data_dir
):
    srv = server_factory(data_dir).start()
    random.seed(11)
    blob = random.randbytes(3_000_000)
    (data_dir.parent / "blob").write_bytes(blob)
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        done = api.post(
            "/jobs", json={"command": f"cat {data_dir.parent / 'blob'}; echo err >&2"}
        ).json()
        wait_job(api, done["id"])
        before = api.get(f"/jobs/{done['id']}/events").content
        running = api.post("/jobs", json={"command": "echo started; exec sleep 300"}).json()
        wait_for(lambda: api.get(f"/jobs/{running['id']}/log").content == b"started\n")
        pid = api.get(f"/jobs/{running['id']}").json()["pid"]
    srv.kill()
    assert _alive(pid)  # the job outlived the server, in its own process group

    again = server_factory(data_dir).start()
    with httpx.Client(base_url=again.url, headers=again.headers, timeout=30) as api:
        log = api.get(f"/jobs/{done['id']}/log", params={"stream": "stdout"}).content
        assert hashlib.sha256(log).digest() == hashlib.sha256(blob).digest()
        assert api.get(f"/jobs/{done['id']}/events").content == before
        lost = wait_job(api, running["id"])
        assert lost["status"] == "lost" and "server" in lost["reason"]
        events = api.get(f"/jobs/{running['id']}/events").text
        assert "event: error" in events and events.rstrip().splitlines()[-2] == "event: complete"
        assert api.get(f"/jobs/{running['id']}/log").content == b"started\n"
        wait_for(lambda: not _alive(pid))  # its process group was ended


def test_sigkilled_server_leaves_nothing_running_and_queued_jobs_run_after_restart(
    server_factory, data_dir, tmp_path
):
    # A long kill grace keeps the first server waiting on the grandchild, which ignores SIGTERM,
    # after the job's shell (its group's leader) has exited: then the server is killed.
    srv = server_factory(
        data_dir, extra=["--max-running-jobs", "1", "--kill-grace-seconds", "60"]
    ).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        # The shell exits only once the grandchild ignores SIGTERM: the group's SIGTERM, sent
        # when the shell has exited, must not find it before its `trap`.
        script = (
            "(trap '' TERM; : > ready; exec sleep 300) & echo $! > orphan; "
            "until [ -e ready ]; do sleep 0.01; done; echo bye; exit 0"
        )
        left = api.post("/jobs", json={"command": script, "cwd": str(tmp_path)}).json()
        orphan = int(
            wait_for(lambda: (tmp_path / "orphan").is_file() and (tmp_path / "orphan").read_text())
        )
        leader = api.get(f"/jobs/{left['id']}").json()["pid"]
        wait_for(lambda: not _alive(leader))
        queued = api.post("/jobs", json={"command": "echo ran > ran", "cwd": str(tmp_path)}).json()
        assert api.get(f"/jobs/{queued['id']}").json()["status"] == "queued"
    srv.kill()
    assert _alive(orphan) and not (tmp_path / "ran").exists()

    again = server_factory(data_dir, extra=["--kill-grace-seconds", "1"]).start()
    with httpx.Client(base_url=again.url, headers=again.headers, timeout=30) as api:
        lost = wait_job(api, left["id"])
        assert lost["status"] == "lost"
        assert api.get(f"/jobs/{left['id']}/log").content == b"bye\n"
        wait_for(lambda: not _alive(orphan))  # ended, though its group's leader was long gone
        ran = wait_job(api, queued["id"])
        assert ran["status"] == "succeeded" and (tmp_path / "ran").read_text() == "ran\n"


def test_sigterm_ends_jobs_cancelled_and_closes_streams(server_factory, data_dir):
    srv = server_factory(data_dir, extra=["--kill-grace-seconds", "1"]).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        job = api.post("/jobs", json={"command": "trap '' TERM; echo up; sleep 300"}).json()
        wait_for(lambda: api.get(f"/jobs/{job['id']}/log").content == b"up\n")
        pid = api.get(f"/jobs/{job['id']}").json()["pid"]
        with api.stream("GET", f"/jobs/{job['id']}/events") as stream:
            srv.proc.send_signal(signal.SIGTERM)
            body = b"".join(stream.iter_raw())  # ends cleanly, after `complete`
    assert srv.proc.wait(30) == 0
    assert b"event: complete" in body and b'"status":"cancelled"' in body
    assert not _alive(pid)
    again = server_factory(data_dir).start()
    with httpx.Client(base_url=again.url, headers=again.headers, timeout=30) as api:
        ended = api.get(f"/jobs/{job['id']}").json()
    assert ended["status"] == "cancelled" and "shut down" in ended["reason"]


def test_no_orphans_or_zombies_after_many_jobs(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        ids = [
            api.post("/jobs", json={"command": "sleep 0.05 & echo $!"}).json()["id"]
            for _ in range(20)
        ]
        for i in ids:
            wait_job(api, i)
    ps = subprocess.run(
        ["ps", "--ppid", str(server.proc.pid), "-o", "stat=,pid="], capture_output=True, text=True
    )
    assert not [c for c in ps.stdout.splitlines() if c.strip().startswith("Z")]


def test_sigkilled_while_a_job_writes_what_a_client_received_is_kept_exactly(
    server_factory, data_dir
):
    srv = server_factory(data_dir, extra=["--fsync-interval-seconds", "0.2"]).start()
    writer = (
        "import sys\nfor i in range(10**9): sys.stdout.write('%09d\\n' % i); sys.stdout.flush()"
    )
    received: list[dict] = []
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        job = api.post("/jobs", json={"argv": ["python3", "-c", writer]}).json()
        parser = SSEParser()
        try:
            with api.stream("GET", f"/jobs/{job['id']}/events") as stream:
                for chunk in stream.iter_raw():
                    received += [orjson.loads(m.data) for m in parser.feed(chunk)]
                    if sum(1 for e in received if e["type"] == "stdout") == 50:
                        srv.kill()  # what was sent before this is still read below
        except httpx.HTTPError:
            pass  # the connection died with the server
    seen = b"".join(e["data"]["text"].encode() for e in received if e["type"] == "stdout")
    assert len(seen) > 0 and seen.endswith(b"\n")

    again = server_factory(data_dir).start()
    with httpx.Client(base_url=again.url, headers=again.headers, timeout=30) as api:
        lost = wait_job(api, job["id"])
        log = api.get(f"/jobs/{job['id']}/log", params={"stream": "stdout"}).content
        events = [
            orjson.loads(m.data)
            for m in SSEParser().feed(api.get(f"/jobs/{job['id']}/events").content)
        ]
    assert lost["status"] == "lost"
    assert log.startswith(seen)  # every byte a client got, exactly; perhaps more the file held
    # ... and every event it got, with the same number: none was lost or renumbered.
    assert events[: len(received)] == received
    assert events[-1]["type"] == "complete" and events[-1]["data"]["stdout_bytes"] == len(log)


def test_garbage_on_the_socket_is_a_400_and_one_log_line_not_a_traceback(server):
    requests = [
        b"GARBAGE\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
    ]
    for raw in requests:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw)
            assert sock.recv(100).startswith(b"HTTP/1.0 400 ")
    assert httpx.get(server.url + "/status").status_code == 200
    log = wait_for(lambda: (out := server.output()).count("malformed HTTP request") >= 2 and out)
    assert "Traceback" not in log
