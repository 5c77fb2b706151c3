"""Typing into real tmux and screen sessions, as a source's input and interrupt do."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from jobcast.config import SourceConfig
from jobcast.errors import Conflict
from jobcast.sources import control
from tests.helpers import async_wait_for


@pytest.fixture(params=["tmux", "screen"])
def session(request, tmp_path):
    """A bash recorded by `script -f` in a real tmux or screen session; its SourceConfig."""
    name = f"jobcast-ctl-{os.getpid()}"
    record = tmp_path / "S.typescript"
    shell = ["script", "-f", "-q", "-c", "bash --norc --noprofile -i", str(record)]
    if request.param == "tmux":
        subprocess.run(["tmux", "new-session", "-d", "-s", name, shlex.join(shell)], check=True)
        stop = ["tmux", "kill-session", "-t", name]
    else:
        subprocess.run(["screen", "-dmS", name, *shell], check=True)
        stop = ["screen", "-S", name, "-X", "quit"]
    yield SourceConfig(path=str(record), **{request.param: name}), record
    subprocess.run(stop, capture_output=True)


async def _shows(record, text: bytes) -> bool:
    return record.exists() and text in record.read_bytes()


async def test_interrupt_stops_the_foreground_command_and_the_shell_answers(session):
    config, record = session
    await async_wait_for(lambda: _shows(record, b"bash"))
    await control.send(config, b"sleep 100; echo slept\r")
    await async_wait_for(lambda: _shows(record, b"sleep 100; echo slept\r\n"))
    await control.interrupt(config)
    await control.send(config, b"echo alive-$((40+2))\r")
    await async_wait_for(lambda: _shows(record, b"alive-42\r\n"))
    # ^C ended the whole list, as at a terminal: "slept" is only in the echoed command line.
    assert record.read_bytes().count(b"slept\r\n") == 1


async def test_text_is_typed_literally_not_as_key_names(session):
    config, record = session
    await async_wait_for(lambda: _shows(record, b"bash"))
    # Key names for tmux, `^X` and backslash escapes for screen: all typed as they are.
    text = b"echo 'C-c Enter ^C \\\\ x'\r"
    assert await control.send(config, text) == len(text)
    await async_wait_for(lambda: _shows(record, b"\rC-c Enter ^C \\\\ x\r\n"))


@pytest.mark.parametrize("tool", ["tmux", "screen"])
async def test_a_session_that_is_gone_is_a_conflict_saying_so(tmp_path, tool):
    config = SourceConfig(path=str(tmp_path / "x"), **{tool: "jobcast-no-such-session-here"})
    with pytest.raises(Conflict, match="jobcast-no-such-session-here"):
        await control.send(config, b"ls\r")
    with pytest.raises(Conflict, match="jobcast-no-such-session-here"):
        await control.interrupt(config)
