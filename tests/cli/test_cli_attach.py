"""`jobcast attach` and `run --pty` in a real terminal (tmux): keys reach the program, its answers
show, Ctrl-] detaches with the job running and the terminal restored; `rec` writes the cast."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from jobcast.cli.attach import key_name, parse_key
from tests.cli.test_cli_jobs import jobcast
from tests.conftest import wait_job
from tests.helpers import Proxy, wait_for

#: a line-reading program: its answers say what arrived, and how
PROG = r"""
import os, sys
while True:
    try:
        line = input("ready> ")
    except KeyboardInterrupt:
        print("interrupted")
        continue
    except EOFError:
        break
    if line == "quit":
        sys.exit(3)
    if line == "size":
        cols, rows = os.get_terminal_size(0)
        print(f"size={cols}x{rows}")
        continue
    print(f"len={len(line)}")
"""


class Tmux:
    """A tmux server of its own, one 100x30 window running a plain bash with the server's
    address and token (its data dir) in the environment."""

    def __init__(self, url: str, data_dir: Path, cwd: Path, token: str | None = None) -> None:
        self.socket = f"jobcast-test-{uuid.uuid4().hex[:8]}"
        env = {"JOBCAST_URL": url, "JOBCAST_DATA_DIR": str(data_dir), "PS1": "$ ", "TERM": "xterm"}
        if token is not None:
            env["JOBCAST_TOKEN"] = token
        shell = ["env", *(f"{k}={v}" for k, v in env.items()), "bash", "--norc", "--noprofile"]
        size = ["-x", "100", "-y", "30"]
        self.tmux("new-session", "-d", *size, "-s", "t", "-c", str(cwd), shlex.join(shell))

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def line(self, command: str) -> None:
        self.type(command)
        self.keys("Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def wait(self, pattern: str, timeout: float = 20.0) -> str:
        """The screen once `pattern` (a regex) shows on it."""
        return wait_for(lambda: re.search(pattern, self.screen(), re.M) and self.screen(), timeout)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def term(server, tmp_path):
    t = Tmux(server.url, server.data_dir, tmp_path)
    t.wait(r"^\$ ")
    yield t
    t.close()


def _jobcast(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "jobcast", *args])


def _prog_job(api) -> dict:
    return api.post("/jobs", json={"argv": ["python3", "-c", PROG], "pty": True}).json()


def _mark(term: Tmux, name: str) -> None:
    term.line(f"echo {name}=$?")


def test_typed_keys_reach_the_program_and_ctrl_bracket_detaches(term, api):
    job = _prog_job(api)
    term.line("stty -g > before.stty; clear")
    term.line(f"{_jobcast('attach', job['id'])}; echo EXIT=$?")
    term.wait(r"attached to job \S+; Ctrl-\] to detach")
    term.wait(r"^ready> ")
    term.line("hello")
    term.wait(r"^len=5$")
    # Tab goes to the program as a tab; Ctrl-C to the program (its SIGINT), not to attach
    term.type("a")
    term.keys("Tab")
    term.line("b")
    term.wait(r"^len=3$")
    term.keys("C-c")
    term.wait(r"\^Cinterrupted$")
    # the window's size when attach started (the job began at 80x24), and after a resize
    term.line("size")
    term.wait(r"^size=100x30$")
    term.tmux("resize-window", "-t", "t", "-x", "90", "-y", "25")
    term.line("size")
    term.wait(r"^size=90x25$")
    # the program's own echo shows each line once: nothing echoed locally besides
    assert term.screen().count("hello") == 1
    term.keys("C-]")
    screen = term.wait(r"^EXIT=0$")
    assert "detached from job" in screen
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"
    term.line("stty -g | cmp - before.stty && echo SAME; stty -a")
    screen = term.wait(r"^SAME$")
    settings = screen[screen.rindex("SAME") :]
    assert re.search(r"(?<!-)\bicanon\b", settings) and re.search(r"(?<!-)\becho\b", settings)
    # attached again: the recent screen first, then the program goes on from where it was
    term.line(f"clear; {_jobcast('attach', job['id'])}; echo EXIT=$?")
    term.wait(r"^len=5$")
    term.line("quit")
    term.wait(r"^EXIT=3$")  # the job's exit code when it ended
    assert wait_job(api, job["id"])["exit_code"] == 3


def test_read_only_cannot_type(term, api):
    job = _prog_job(api)
    term.line(f"{_jobcast('attach', '--read-only', job['id'])}; echo EXIT=$?")
    term.wait(r"attached read-only to job")
    term.wait(r"^ready> ")
    term.line("sneaky")
    api.post(f"/jobs/{job['id']}/input", json={"data": "visible!\n"})
    term.wait(r"^len=8$")  # what others type shows; what this one typed went nowhere
    api.post(f"/jobs/{job['id']}/input", json={"data": "size\n"})
    term.wait(r"^size=80x24$")  # nor did this window's size
    term.keys("C-]")
    term.wait(r"^EXIT=0$")
    log = api.get(f"/jobs/{job['id']}/log").content
    assert b"sneaky" not in log and b"len=6" not in log
    api.post(f"/jobs/{job['id']}/cancel")


def test_a_detach_key_of_ones_own(term, api):
    job = _prog_job(api)
    term.line(f"{_jobcast('attach', '--detach-key', 'ctrl-a', job['id'])}; echo EXIT=$?")
    term.wait(r"Ctrl-A to detach")
    term.wait(r"^ready> ")
    term.keys("C-]")  # an ordinary key now: the program gets it
    term.keys("Enter")
    term.wait(r"^len=1$")
    term.keys("C-a")
    term.wait(r"^EXIT=0$")
    api.post(f"/jobs/{job['id']}/cancel")


@pytest.mark.parametrize("flags", [["--pty"], ["--pty", "-i"]])
def test_run_pty_from_a_terminal_attaches(term, api, flags):
    term.line(f"{_jobcast('run', *flags, '--', 'python3', '-c', PROG)}; echo EXIT=$?")
    term.wait(r"^ready> ")
    term.line("abc")
    screen = term.wait(r"^len=3$")
    assert screen.count("abc") == 1  # echoed once, by the job's terminal
    term.keys("C-c")
    term.wait(r"\^Cinterrupted$")  # the program's SIGINT, and the job goes on
    term.line("quit")
    term.wait(r"^EXIT=3$")
    # the job's terminal speaks this one's language, as over ssh: TERM came along
    job = api.get("/jobs").json()["jobs"][0]
    header = api.get(f"/jobs/{job['id']}/asciicast").content.split(b"\n")[0]
    assert orjson.loads(header)["env"] == {"TERM": "xterm"}


def test_attach_refuses_a_job_without_a_terminal_and_a_bad_key(server, api):
    job = api.post("/jobs", json={"command": "sleep 30"}).json()
    done = jobcast(server.url, "attach", "--read-only", job["id"])
    assert done.returncode == 2 and b"does not run in a terminal" in done.stderr
    done = jobcast(server.url, "attach", "--detach-key", "ctrl-1", job["id"])
    assert done.returncode == 2 and b"not a key" in done.stderr
    pty_job = _prog_job(api)
    done = jobcast(server.url, "attach", pty_job["id"])  # stdin is no terminal here
    assert done.returncode == 2 and b"needs a terminal" in done.stderr
    api.post(f"/jobs/{job['id']}/cancel")
    api.post(f"/jobs/{pty_job['id']}/cancel")


def test_rec_writes_the_recording(server, api, tmp_path):
    job = api.post("/jobs", json={"command": "printf 'x\\n'", "pty": True}).json()
    wait_job(api, job["id"])
    cast = api.get(f"/jobs/{job['id']}/asciicast").content
    done = jobcast(server.url, "rec", job["id"])
    assert done.returncode == 0 and done.stdout == cast
    out = tmp_path / "x.cast"
    assert jobcast(server.url, "rec", job["id"], "-o", str(out)).returncode == 0
    assert out.read_bytes() == cast
    missing = jobcast(server.url, "rec", "nope")
    assert missing.returncode == 2 and b"nope" in missing.stderr
    assert os.path.getsize(out) == len(cast)


@pytest.fixture
def proxy(server):
    p = Proxy(server.port)
    yield p
    p.close()


def _drop_until_attach_retries(proxy: Proxy) -> None:
    """The network down until attach tries to reconnect: it knows then that the connection is
    gone, and keeps what is typed for the next one. (Keys typed before it knows go into the dead
    socket, as over any TCP connection cut without a word, and are lost.)"""
    before = proxy.turned_away
    proxy.drop()
    wait_for(lambda: proxy.turned_away > before, timeout=30)


def test_a_dropped_connection_resumes_without_repeating_output(server, api, proxy, tmp_path):
    term = Tmux(proxy.url, server.data_dir, tmp_path)
    try:
        job = _prog_job(api)

        def log() -> bytes:
            return api.get(f"/jobs/{job['id']}/log").content

        term.line(f"{_jobcast('attach', job['id'])}; echo EXIT=$?")
        term.wait(r"^ready> ")
        term.line("one")
        term.wait(r"^len=3$")
        _drop_until_attach_retries(proxy)
        api.post(f"/jobs/{job['id']}/input", json={"data": "written meanwhile\n"})
        wait_for(lambda: b"len=17" in log())  # output attach missed: the resume brings it
        term.line("typed meanwhile!")  # kept, and sent once the connection is back
        assert b"typed meanwhile" not in log()  # not yet: nothing passes while the network is down
        proxy.restore()
        term.wait(r"^len=16$")
        screen = term.wait(r"^len=17$")
        for answer in ("len=3", "len=16", "len=17"):
            assert len(re.findall(rf"^{answer}$", screen, re.M)) == 1, screen
        _drop_until_attach_retries(proxy)
        term.line("two")
        proxy.restore()
        screen = term.wait(r"^len=3\n(.*\n)*len=3$")
        assert screen.count("len=16") == 1
        term.keys("C-]")
        term.wait(r"^EXIT=0$")
    finally:
        term.close()
    api.post(f"/jobs/{job['id']}/cancel")


def test_the_terminal_is_restored_when_the_connection_cannot_come_back(
    server, server_factory, api, proxy, tmp_path
):
    term = Tmux(proxy.url, server.data_dir, tmp_path)
    try:
        job = _prog_job(api)
        term.line("stty -g > before.stty")
        term.line(f"{_jobcast('attach', job['id'])}; echo EXIT=$?")
        term.wait(r"^ready> ")
        # Another server where this one was, which knows neither the token nor the job
        (tmp_path / "other").mkdir()
        other = server_factory(tmp_path / "other").start()
        proxy.target = other.port
        proxy.cut()
        screen = term.wait(r"^EXIT=2$")
        assert "refused the token" in screen
        term.line("stty -g | cmp - before.stty && echo SAME")
        term.wait(r"^SAME$")
    finally:
        term.close()
    api.post(f"/jobs/{job['id']}/cancel")


def test_ctrl_backslash_quits_the_program_and_attach_exits_with_its_status(term, api):
    job = _prog_job(api)
    term.line("stty -g > before.stty")
    term.line(f"{_jobcast('attach', job['id'])}; echo EXIT=$?")
    term.wait(r"^ready> ")
    term.keys("C-\\")  # SIGQUIT to the program through its terminal, as at a terminal
    term.wait(r"^EXIT=131$")
    assert wait_job(api, job["id"])["signal"] == "SIGQUIT"
    term.line("stty -g | cmp - before.stty && echo SAME")
    term.wait(r"^SAME$")


def test_sigterm_to_attach_restores_the_terminal(term, api, tmp_path):
    job = _prog_job(api)
    term.line("stty -g > before.stty")
    # attach in the foreground, as ever, its pid written first
    attach = _jobcast("attach", job["id"])
    term.line(f"sh -c 'echo $$ > attach.pid; exec {attach}'; echo EXIT=$?")
    term.wait(r"^ready> ")
    os.kill(int((tmp_path / "attach.pid").read_text()), signal.SIGTERM)
    term.wait(r"^EXIT=143$")
    term.line("stty -g | cmp - before.stty && echo SAME")
    term.wait(r"^SAME$")
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"
    api.post(f"/jobs/{job['id']}/cancel")


def test_a_token_without_control_watches_read_only(server_factory, data_dir, tmp_path):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        '[[tokens]]\nname = "viewer"\ntoken = "tok-viewer-0123456789"\nscopes = ["read"]\n'
    )
    srv = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        job = _prog_job(api)
        term = Tmux(srv.url, data_dir, tmp_path, token="tok-viewer-0123456789")
        try:
            term.wait(r"^\$ ")
            term.line(f"{_jobcast('attach', job['id'])}; echo EXIT=$?")
            term.wait(r"^ready> ")
            term.wait(r"lacks the `control` scope.*; watching read-only")
            term.line("sneaky")
            api.post(f"/jobs/{job['id']}/input", json={"data": "visible!\n"})
            term.wait(r"^len=8$")
            term.keys("C-]")
            term.wait(r"^EXIT=0$")
        finally:
            term.close()
        assert b"sneaky" not in api.get(f"/jobs/{job['id']}/log").content
        viewer = {"Authorization": "Bearer tok-viewer-0123456789"}
        cast = api.get(f"/jobs/{job['id']}/asciicast", headers=viewer)  # `read` is enough
        assert cast.status_code == 200 and b"len=8" in cast.content
        api.post(f"/jobs/{job['id']}/cancel")


def test_recorded_input_is_said_on_attach_and_in_the_cast_for_a_driver_only(
    server_factory, data_dir, tmp_path
):
    viewer = "tok-viewer-0123456789"
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(f'[[tokens]]\nname = "viewer"\ntoken = "{viewer}"\nscopes = ["read"]\n')
    srv = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    term = Tmux(srv.url, data_dir, tmp_path)
    try:
        term.wait(r"^\$ ")
        run = _jobcast("run", "--pty", "--record-input", "--name", "typed", "--", "python3", "-c")
        term.line(f"{run} {shlex.quote(PROG)}; echo EXIT=$?")
        term.wait(r"job typed records its input: what you type is recorded")
        term.wait(r"^ready> ")
        term.line("hello")
        term.wait(r"^len=5$")
        term.keys("C-c")
        term.wait(r"\^Cinterrupted$")
        term.line("quit")
        term.wait(r"^EXIT=3$")
        # A job that does not record says nothing of the kind.
        with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
            job = _prog_job(api)
            term.line(f"clear; {_jobcast('attach', job['id'])}; echo EXIT=$?")
            term.wait(r"^ready> ")
            term.keys("C-]")
            assert "recorded" not in term.wait(r"^EXIT=0$")
            api.post(f"/jobs/{job['id']}/cancel")
    finally:
        term.close()
    cast = jobcast(srv.url, "rec", "typed")
    assert cast.returncode == 0, cast.stderr
    header, *lines = [orjson.loads(line) for line in cast.stdout.splitlines()]
    # every key as typed in raw mode: Enter is a CR, Ctrl-C its byte, for the program's terminal
    assert "".join(d for _, code, d in lines if code == "i") == "hello\r\x03quit\r"
    (tmp_path / "typed.cast").write_bytes(cast.stdout)
    played = subprocess.run(
        ["asciinema", "play", "-s", "100", str(tmp_path / "typed.cast")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert played.returncode == 0 and b"len=5" in played.stdout, played.stderr
    # A token that may only watch gets the same recording without what was typed.
    watched = jobcast(srv.url, "--token", viewer, "rec", "typed")
    assert watched.returncode == 0, watched.stderr
    assert [orjson.loads(line) for line in watched.stdout.splitlines()] == [
        header,
        *(e for e in lines if e[1] != "i"),
    ]


def test_rec_loads_only_the_light_client_and_attach_no_rich():
    from tests.cli.test_cli_startup import _heavy, _loaded

    start = "from jobcast.cli import main\nmain()"
    loaded = _loaded(start, "--url", "http://127.0.0.1:1", "rec", "x")
    assert "jobcast.client.plain" in loaded and _heavy(loaded) == set()
    loaded = _loaded(start, "--url", "http://127.0.0.1:1", "attach", "x")
    assert not {m for m in loaded if m.startswith(("rich", "pygments", "aiohttp"))}


@pytest.mark.parametrize(
    ("text", "key", "name"),
    [
        ("ctrl-]", b"\x1d", "Ctrl-]"),
        ("^A", b"\x01", "Ctrl-A"),
        ("C-a", b"\x01", "Ctrl-A"),
        ("ctrl+\\", b"\x1c", "Ctrl-\\"),
        ("ctrl-?", b"\x7f", "Ctrl-?"),
        ("~", b"~", "~"),
    ],
)
def test_detach_keys(text, key, name):
    assert parse_key(text) == key and key_name(key) == name


@pytest.mark.parametrize("text", ["ctrl-1", "ctrl-", "ab", "é"])
def test_what_is_not_a_key(text):
    with pytest.raises(ValueError, match="not a key"):
        parse_key(text)
    assert parse_key("none") is None


def test_ctrl_c_interrupts_the_shells_foreground_command_not_the_shell(term, api):
    spec = {"argv": ["bash", "--norc", "--noprofile", "-i"], "pty": True, "env": {"PS1": "sh> "}}
    job = api.post("/jobs", json=spec).json()
    term.line(f"{_jobcast('attach', job['id'])}; echo EXIT=$?")
    term.wait(r"^sh> ")
    term.line("sleep 100; echo slept")
    term.wait(r"^sh> sleep 100; echo slept$")
    term.keys("C-c")
    term.line("echo alive $((2 + 3))")
    screen = term.wait(r"^alive 5$")
    assert "slept" not in screen.replace("echo slept", "")
    term.line("exit 4")
    term.wait(r"^EXIT=4$")


def test_recent_says_how_much_of_the_screen_shows_first(term, api):
    job = _prog_job(api)
    api.post(f"/jobs/{job['id']}/input", json={"data": "hello\n"})
    wait_for(lambda: b"len=5" in api.get(f"/jobs/{job['id']}/log").content)
    term.line(f"{_jobcast('attach', '--read-only', '--recent', '0', job['id'])}; echo EXIT=$?")
    term.wait(r"attached read-only")
    api.post(f"/jobs/{job['id']}/input", json={"data": "abcdefg\n"})
    screen = term.wait(r"^len=7$")
    assert "len=5" not in screen  # the output before attach was left out; what came after shows
    term.keys("C-]")
    term.wait(r"^EXIT=0$")
    term.line("clear")
    term.wait(r"\A\$ \s*\Z")
    term.tmux("clear-history", "-t", "t")
    term.line(f"{_jobcast('attach', '--read-only', '--recent', '16', job['id'])}")
    screen = term.wait(r"^ready> ", timeout=20)
    # the last 16 bytes are "\r\nlen=7\r\nready> ", shown from the start of a line: no more
    assert "len=7" in screen and "abcdefg" not in screen and "len=5" not in screen
    term.keys("C-]")
    api.post(f"/jobs/{job['id']}/cancel")
