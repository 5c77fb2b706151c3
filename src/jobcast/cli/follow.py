"""Following a job live for `run` and `follow`: printing its output and handling Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from ..client.asyncio import AsyncClient
from ..errors import JobcastError
from ..models import Event, EventType, Job
from . import render

__all__ = ["Interrupts", "follow_job", "write_event"]


def write_event(ev: Event) -> None:
    """Job output to our own stdout or stderr, as the job wrote it; notices to stderr."""
    if ev.raw is not None and ev.type in (EventType.STDOUT, EventType.STDERR):
        out = sys.stdout.buffer if ev.type is EventType.STDOUT else sys.stderr.buffer
        out.write(ev.raw)
        out.flush()
    elif ev.type is EventType.ERROR:
        click.echo(f"jobcast: {ev.data.get('message', ev.data)}", err=True)


class Interrupts:
    """What Ctrl-C does while a job is followed.

    With `forward` (`run`): the first sends SIGINT to the job, as if it ran here, and following
    goes on so its end shows; the next one detaches. Without (`follow`): the first detaches.
    """

    def __init__(
        self, client: AsyncClient, job: Job, forward: bool, detach: Callable[[], Any]
    ) -> None:
        self._client, self._job, self._forward, self._detach = client, job, forward, detach
        self._tasks: set[asyncio.Task[None]] = set()
        self.count = 0

    def __call__(self) -> None:
        self.count += 1
        if not self._forward or self.count > 1:
            self._detach()
            return
        task = asyncio.get_running_loop().create_task(self._interrupt())
        self._tasks.add(task)  # held, so the task is not collected before it ran
        task.add_done_callback(self._tasks.discard)

    async def _interrupt(self) -> None:
        try:
            await self._client.signal(self._job.id, "INT")
        except JobcastError as e:
            click.echo(f"jobcast: could not interrupt job {self._job.id}: {e.message}", err=True)
            return
        if sys.stderr.isatty():
            click.echo(
                f"jobcast: sent SIGINT to job {self._job.id}; Ctrl-C again detaches", err=True
            )


async def _print_events(client: AsyncClient, job_id: str) -> Event | None:
    """Print the job's events; its `complete` event, if the stream got that far. On a terminal,
    `progress` events draw a bar below the output."""
    done: Event | None = None
    bar = None
    if sys.stderr.isatty():
        from .progress import ProgressLine

        bar = ProgressLine()
    try:
        async for ev in client.events(job_id):
            if bar is None:
                write_event(ev)
            elif ev.type is EventType.PROGRESS:
                bar.update(ev.data)
            else:
                bar.before_output()
                write_event(ev)
                bar.after_output(ev.raw or b"" if ev.type is not EventType.ERROR else b"\n")
            if ev.type is EventType.COMPLETE:
                done = ev
    finally:
        if bar is not None:
            bar.clear()
    return done


async def follow_job(client: AsyncClient, job: Job, *, forward_interrupt: bool) -> int:
    """Print the job's output until it ends; its exit code, or 130 when the user detached."""
    loop = asyncio.get_running_loop()
    printer = loop.create_task(_print_events(client, job.id))
    loop.add_signal_handler(
        signal.SIGINT, Interrupts(client, job, forward_interrupt, printer.cancel)
    )
    try:
        await asyncio.wait([printer])
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if printer.cancelled():
        click.echo(
            f"jobcast: detached from job {job.id}, which goes on; "
            f"`jobcast follow {job.id}` follows it again",
            err=True,
        )
        return 130
    done = printer.result()  # raises what ended the stream, if not its end
    if done is not None:
        # the final event says how the job ended: the server may already be gone (shutdown)
        fields = ("status", "exit_code", "signal", "reason", "duration")
        final = {
            **job.model_dump(mode="json"),
            **{k: done.data[k] for k in fields if k in done.data},
        }
    else:
        final = (await client.job(job.id)).model_dump(mode="json")
    if sys.stderr.isatty() and (line := render.closing_line(final)) is not None:
        click.echo(line, err=True)
    return render.exit_code_of(final)
