"""Forwarding input to a job for `run --stdin` and `send`: this stdin chunk by chunk, and the
wait, as a write to a full pipe waits, while the job cannot take it yet."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator

import click

from ..client.asyncio import AsyncClient
from ..client.stream import backoff
from ..errors import Conflict, JobcastError, JobFinished, NoStdin

__all__ = ["forward_stdin", "send_when_ready"]

#: bytes read from stdin at a time when forwarding it
CHUNK = 64 * 1024


async def _stdin_chunks() -> AsyncIterator[bytes]:
    fd = sys.stdin.fileno()
    if stat.S_ISREG(os.fstat(fd).st_mode):
        while chunk := os.read(fd, CHUNK):  # a file never blocks for long
            yield chunk
        return
    # A pipe or terminal is read by a daemon thread: it may block forever without holding up our
    # exit, and stdin keeps its blocking mode (a terminal's is shared with stdout).
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)

    def reader() -> None:
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                chunk = b""
            try:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except (RuntimeError, concurrent.futures.CancelledError):
                return  # the loop is gone: nobody wants the rest
            if not chunk:
                return

    threading.Thread(target=reader, name="jobcast-stdin", daemon=True).start()
    while chunk := await queue.get():
        yield chunk


async def send_when_ready(
    client: AsyncClient, job_id: str, data: bytes, *, eof: bool = False, patience: float | None
) -> None:
    """Send input, waiting while the job cannot take it yet, as a write to a full pipe waits.

    The server answers a plain `Conflict` while the job is queued or has not read what it was
    sent before; `JobFinished` and `NoStdin` are final. `patience` bounds the wait (None: none).
    """
    loop = asyncio.get_running_loop()
    deadline = None if patience is None else loop.time() + patience
    delays = backoff(initial=0.05, maximum=1.0)
    while True:
        try:
            await client.send(job_id, data, eof=eof)
            return
        except (JobFinished, NoStdin):
            raise
        except Conflict:
            if deadline is not None and loop.time() > deadline:
                raise
        await asyncio.sleep(next(delays))


async def forward_stdin(client: AsyncClient, job_id: str) -> None:
    """Copy our stdin to the job's, then close it; stop quietly once the job stops taking it."""
    try:
        async for chunk in _stdin_chunks():
            await send_when_ready(client, job_id, chunk, patience=None)
        await send_when_ready(client, job_id, b"", eof=True, patience=None)
    except (JobFinished, NoStdin):
        return  # what is left has nowhere to go
    except JobcastError as e:
        click.echo(f"jobcast: stopped forwarding stdin: {e.message}", err=True)
