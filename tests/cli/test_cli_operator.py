"""`jobcast paste` and `jobcast trace`, run as real subprocesses against a real server."""

from __future__ import annotations

import hashlib

from jobcast.client import Client
from tests.cli.test_cli_jobs import jobcast, start


def test_paste_prints_the_ref_of_stdin_or_a_file(server, tmp_path):
    done = jobcast(server.url, "paste", input=b"from stdin\n")
    ref = "ctx://paste/" + hashlib.sha256(b"from stdin\n").hexdigest()
    assert (done.returncode, done.stdout) == (0, ref.encode() + b"\n"), done.stderr
    f = tmp_path / "notes.md"
    f.write_bytes(b"\xff binary is fine")
    done = jobcast(server.url, "paste", str(f))
    assert done.returncode == 0
    with Client(server.url) as client:
        assert client.get_paste(done.stdout.decode().strip()) == b"\xff binary is fine"


def test_trace_prints_the_newest_entries_oldest_first_and_follows(server):
    with Client(server.url) as client:
        client.paste("one")
        client.paste("two")
        done = jobcast(server.url, "trace", "-n", "1")
        assert done.returncode == 0
        lines = done.stdout.decode().splitlines()
        assert len(lines) == 1 and " #2 admin paste.create - ok " in lines[0]
        json_lines = jobcast(server.url, "trace", "--json").stdout.splitlines()
        assert [b'"seq":1' in json_lines[0], b'"seq":2' in json_lines[1]] == [True, True]
        follow = start(server.url, "trace", "-f", "-n", "1", "--op", "paste.create")
        try:
            wait_for_line_containing(follow, b" #2 ")
            # Followed: a new entry arrives, and a filtered-out one (job.*) does not show.
            client.run(["true"])
            three = client.paste("three").ref
            wait_for_line_containing(follow, f"admin paste.create - ok ref={three}".encode())
        finally:
            follow.kill()
            follow.communicate()  # reaps it and closes its pipes


def wait_for_line_containing(proc, part: bytes) -> None:
    assert proc.stdout is not None
    while part not in (line := proc.stdout.readline()):
        assert line, f"stdout ended before a line with {part!r}"
        assert b"job." not in line, line
