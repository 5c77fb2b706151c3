"""The terminal session commands: `attach` (be a PTY job's terminal) and `rec` (its recording)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import click

from ..client.endpoint import job_path
from .completion import complete_job
from .jobs import Target, _without_httpx_cli, pass_target

__all__ = ["COMMANDS", "DETACH_KEY", "key_name", "parse_key"]

#: the default detach key, as telnet's and docker's
DETACH_KEY = "ctrl-]"
#: how much of the job's output `attach` shows first: its recent screen
RECENT_BYTES = 16 * 1024


def parse_key(text: str) -> bytes | None:
    """`ctrl-]`, `^]`, `C-a` or one character -> its byte; `none` -> None (no detach key).

    Raises:
        ValueError: a key that is not one of these.
    """
    t = text.strip()
    if t.lower() == "none":
        return None
    for prefix in ("ctrl-", "ctrl+", "c-", "^"):
        if t.lower().startswith(prefix) and len(t) == len(prefix) + 1:
            c = t[-1].upper()
            if c == "?" or "@" <= c <= "_":
                return bytes([ord(c) ^ 0x40])
    if len(t) == 1 and ord(t) < 128:
        return t.encode()
    raise ValueError(f"{text!r} is not a key: give ctrl-X (X a letter or one of @[\\]^_?), or none")


def key_name(key: bytes) -> str:
    """How to tell the key to a person: `Ctrl-]`."""
    c = key[0]
    return f"Ctrl-{chr(c ^ 0x40)}" if c < 32 or c == 127 else chr(c)


def _detach_key(ctx: click.Context, param: click.Parameter, value: str) -> bytes | None:
    try:
        return parse_key(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def detach_key_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--detach-key",
        default=DETACH_KEY,
        show_default=True,
        callback=_detach_key,
        metavar="KEY",
        help="The key that detaches (ctrl-X, or none); every other key goes to the job.",
    )(func)


@click.command()
@click.argument("job", shell_complete=complete_job)
@click.option("--read-only", is_flag=True, help="Watch only: keys go nowhere but the detach key.")
@detach_key_option
@click.option(
    "--recent",
    type=click.IntRange(min=0),
    default=RECENT_BYTES,
    show_default=True,
    metavar="BYTES",
    help="Show this much of the job's output so far first (its recent screen).",
)
@pass_target
def attach(
    target: Target, job: str, read_only: bool, detach_key: bytes | None, recent: int
) -> None:
    """Be JOB's terminal: its recent screen, then its output live; what you type goes to it.

    JOB must run in a terminal (`jobcast run --pty`). This terminal goes into raw mode, so
    Ctrl-C, Ctrl-Z, Tab and every other key reach the job's program as at its own terminal,
    and the window's size follows this one's. Ctrl-] (--detach-key) detaches and leaves the job
    running; a dropped connection is resumed without repeating output.

    \b
    Exit status: the job's, as `jobcast run`'s, when it ended; 0 after a detach.
    """
    import asyncio

    _without_httpx_cli()
    from .terminal import attach_session

    async def main() -> int:
        async with target.async_client() as client:
            found = await client.job(job)
            return await attach_session(
                client, found, read_only=read_only, detach_key=detach_key, recent_bytes=recent
            )

    raise click.exceptions.Exit(asyncio.run(main()))


@click.command()
@click.argument("job", shell_complete=complete_job)
@click.option(
    "-o",
    "--output",
    type=click.File("wb"),
    default="-",
    help="Write the recording to this file. [default: stdout]",
)
@pass_target
def rec(target: Target, job: str, output: BinaryIO) -> None:
    """Write JOB's recording, with its timing, as an asciicast v2 file (`asciinema play` plays
    it): `jobcast rec build > build.cast`. A running job's recording ends where it has got to."""
    if output.isatty():
        raise click.UsageError("the recording is for a file: redirect stdout, or give -o FILE")
    with target.plain(timeout=60) as client:
        client.download(job_path(job, "/asciicast"), output)
    output.flush()


COMMANDS = [attach, rec]
