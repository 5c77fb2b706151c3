"""`jobcast wait`, `rm` and `prune`, run as real subprocesses against a real server."""

from __future__ import annotations

import signal

from jobcast.client import Client
from jobcast.errors import JobNotFound
from tests.cli.test_cli_exit import _finish, _running
from tests.cli.test_cli_jobs import jobcast, start
from tests.helpers import wait_for


def test_wait_exits_with_each_final_status_code(server):
    cases = {
        "ok": ({"argv": ["true"]}, 0),
        "own-code": ({"command": "exit 3"}, 3),
        "signalled": ({"command": "kill -KILL $$"}, 128 + signal.SIGKILL),
        "timed-out": ({"argv": ["sleep", "10"], "timeout": 0.5}, 124),
        "cancelled": ({"argv": ["sleep", "60"]}, 128 + signal.SIGTERM),
    }
    with Client(server.url) as client:
        for name, (spec, _) in cases.items():
            command = spec.pop("command", None) or spec.pop("argv")
            client.run(command, name=name, **spec)
        # waiting while they run, all at once
        waits = {name: start(server.url, "wait", name) for name in cases}
        cancelled = client.job("cancelled").id
        wait_for(lambda: client.stats()["per_job"].get(cancelled) == 1)  # its `wait` follows it
        client.cancel("cancelled")
        codes = {name: _finish(proc) for name, proc in waits.items()}
    assert {name: code for name, (code, _) in codes.items()} == {
        name: code for name, (_, code) in cases.items()
    }
    assert b"own-code) failed, exit 3 (exit status 3)" in codes["own-code"][1]
    # finished already: at once; several: the first that did not succeed, in the order given
    assert jobcast(server.url, "wait", "ok", "ok").returncode == 0
    assert jobcast(server.url, "wait", "ok", "own-code", "signalled").returncode == 3
    done = jobcast(server.url, "wait", "-q", "signalled", "own-code")
    assert (done.returncode, done.stderr) == (128 + signal.SIGKILL, b"")
    missing = jobcast(server.url, "wait", "ok", "nope")
    assert missing.returncode == 2 and b"nope" in missing.stderr


def test_wait_for_a_lost_job_exits_255(server_factory, data_dir):
    first = server_factory(data_dir).start()
    with Client(first.url) as client:
        client.run(["sleep", "60"], name="lost")
        waiting = start(first.url, "wait", "lost")
        wait_for(lambda: client.stats()["clients"]["total"] == 1)
    first.kill()
    server_factory(data_dir, port=first.port).start()
    assert _finish(waiting)[0] == 255


def test_ctrl_c_stops_waiting_with_130_and_the_job_goes_on(server):
    with Client(server.url) as client:
        client.run(["sleep", "60"], name="long")
        waiting = start(server.url, "wait", "long")
        wait_for(lambda: client.stats()["clients"]["total"] == 1)
        waiting.send_signal(signal.SIGINT)
        assert _finish(waiting)[0] == 130
        assert _running(client, "long")
        client.cancel("long")


def test_rm_refuses_a_running_job_and_says_to_cancel_it_first(server):
    with Client(server.url) as client:
        done = client.wait(client.run(["true"], name="done").id)
        client.run(["sleep", "60"], name="busy")
        wait_for(lambda: _running(client, "busy"))
        rm = jobcast(server.url, "rm", "busy", "done")
        assert rm.returncode == 2
        assert b"job busy has not finished: cancel it first (`jobcast cancel busy`)" in rm.stderr
        assert rm.stdout == b"done\n"  # the others go all the same
        assert _running(client, "busy")
        try:
            client.job(done.id)
            raise AssertionError("not deleted")
        except JobNotFound:
            pass
        client.cancel("busy")


def test_rm_finished_older_than_and_prune(server):
    with Client(server.url) as client:
        ended = [client.wait(client.run(["echo", str(i)]).id).id for i in range(3)]
        live = client.run(["sleep", "60"])
        # none ended a day ago
        old = jobcast(server.url, "rm", "--older-than", "1d")
        assert (old.returncode, old.stdout) == (0, b"")
        assert b"deleted 0 jobs" in old.stderr
        dry = jobcast(server.url, "prune", "--max-jobs", "1", "--dry-run")
        assert dry.stdout.decode().split() == ended[:2]
        assert b"would delete 2 jobs, 4 bytes of output" in dry.stderr
        assert jobcast(server.url, "prune", "--max-bytes", "2").stdout.decode().split() == ended[:2]
        gone = jobcast(server.url, "rm", "--finished")
        assert gone.stdout.decode().split() == [ended[2]]
        assert [j.id for j in client.jobs().jobs] == [live.id]
        client.cancel(live.id)
    assert jobcast(server.url, "rm").returncode == 2  # nothing said: usage
    assert b"--older-than" in jobcast(server.url, "rm", "x", "--finished").stderr
    bad = jobcast(server.url, "prune", "--older-than", "a week")
    assert bad.returncode == 2 and b"write it like 7d" in bad.stderr
