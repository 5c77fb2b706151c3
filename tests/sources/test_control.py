"""Typing into a real tmux session, as a source's input and interrupt do."""

from __future__ import annotations

import os
import subprocess

import pytest

from jobcast.config import SourceConfig
from jobcast.errors import Conflict
from jobcast.sources import control
from tests.helpers import async_wait_for


@pytest.fixture
def tmux_session(tmp_path):
    name = f"jobcast-ctl-{os.getpid()}"
    record = tmp_path / "S.typescript"
    shell = f"script -f -q -c 'bash --norc --noprofile -i' {record}"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, shell], check=True)
    yield name, record
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


async def _shows(record, text: bytes) -> bool:
    return record.exists() and text in record.read_bytes()


async def test_interrupt_stops_the_foreground_command_and_the_shell_answers(tmux_session):
    name, record = tmux_session
    config = SourceConfig(path=str(record), tmux=name)
    await async_wait_for(lambda: _shows(record, b"bash"))
    await control.send(config, b"sleep 100; echo slept\r")
    await async_wait_for(lambda: _shows(record, b"sleep 100; echo slept\r\n"))
    await control.interrupt(config)
    await control.send(config, b"echo alive-$((40+2))\r")
    await async_wait_for(lambda: _shows(record, b"alive-42\r\n"))
    # ^C ended the whole list, as at a terminal: "slept" is only in the echoed command line.
    assert record.read_bytes().count(b"slept\r\n") == 1


async def test_text_is_typed_literally_not_as_key_names(tmux_session):
    name, record = tmux_session
    config = SourceConfig(path=str(record), tmux=name)
    await async_wait_for(lambda: _shows(record, b"bash"))
    assert await control.send(config, b"echo C-c Enter\r") == len(b"echo C-c Enter\r")
    await async_wait_for(lambda: _shows(record, b"\rC-c Enter\r\n"))


async def test_a_session_that_is_gone_is_a_conflict_saying_so(tmp_path):
    config = SourceConfig(path=str(tmp_path / "x"), tmux="jobcast-no-such-session-here")
    with pytest.raises(Conflict, match="jobcast-no-such-session-here"):
        await control.send(config, b"ls\r")
