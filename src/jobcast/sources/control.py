"""Typing into the tmux or screen session a source records (config `[[sources]]`)."""

from __future__ import annotations

import asyncio

from ..config import SourceConfig
from ..errors import Conflict

__all__ = ["interrupt", "send"]

#: how long tmux or screen may take to answer
TIMEOUT = 5.0


async def send(config: SourceConfig, data: bytes) -> int:
    """Type `data` into the session, as keystrokes (a terminal's Enter is `\\r`).

    Raises:
        Conflict: the session is gone, or the tool failed (its message says why).
    """
    text = data.decode(errors="replace")
    if config.tmux is not None:
        # -l: the text as literal keys, never parsed as key names ("Enter", "C-c").
        await _run(["tmux", "send-keys", "-t", config.tmux, "-l", "--", text], config)
    else:
        assert config.screen is not None
        await _run(["screen", "-S", config.screen, "-X", "stuff", _screen_quoted(text)], config)
    return len(data)


async def interrupt(config: SourceConfig) -> None:
    """Ctrl-C, typed: the session's terminal sends SIGINT to its foreground process group."""
    if config.tmux is not None:
        await _run(["tmux", "send-keys", "-t", config.tmux, "C-c"], config)
    else:
        assert config.screen is not None
        await _run(["screen", "-S", config.screen, "-X", "stuff", "^C"], config)


def _screen_quoted(text: str) -> str:
    # `stuff` parses `^X` as a control key and `\\` escapes: typed text keeps them literal.
    return text.replace("\\", "\\\\").replace("^", "\\^")


async def _run(argv: list[str], config: SourceConfig) -> None:
    session = config.tmux or config.screen
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:
        raise Conflict(f"cannot reach session {session!r} of {config.path}: {e}") from None
    try:
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise Conflict(f"{argv[0]} did not answer within {TIMEOUT:g}s for {session!r}") from None
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        raise Conflict(f"cannot type into {argv[0]} session {session!r}: {why}")
