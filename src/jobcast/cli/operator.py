"""The operator's commands: paste, trace. Thin layers over `jobcast.client`."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, BinaryIO

import click

if TYPE_CHECKING:
    from ..models import TraceEntry
    from .jobs import Target

__all__ = ["COMMANDS"]


@click.command()
@click.argument("file", type=click.File("rb"), default="-")
@click.pass_obj
def paste(target: Target, file: BinaryIO) -> None:
    """Store FILE (stdin by default) on the server and print its ref, ctx://paste/<sha256>,
    for a job's context (`"context": [ref]` in POST /jobs; the job finds the files in
    $JOBCAST_CONTEXT). The same content gives the same ref.

    \b
      git diff | jobcast paste
      jobcast paste notes.md
    """
    data = file.read()
    with target.client() as client:
        click.echo(client.paste(data).ref)


def _line(entry: TraceEntry) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.ts))
    detail = " ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in entry.detail.items()
        if v is not None
    )
    parts = [when, f"#{entry.seq}", entry.who, entry.op, entry.job or "-", entry.outcome, detail]
    return " ".join(p for p in parts if p)


@click.command()
@click.argument("count", type=click.IntRange(1, 10_000), required=False)
@click.option(
    "-n",
    "--lines",
    "limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many of the newest entries.",
)
@click.option("-f", "--follow", is_flag=True, help="Then print new entries as they are written.")
@click.option(
    "--op",
    "ops",
    multiple=True,
    metavar="OP",
    help="Only this operation (repeatable): job.create, job.finish, ...",
)
@click.option("--job", metavar="ID", help="Only the entries of this job id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, as in trace.jsonl.")
@click.pass_obj
def trace(
    target: Target,
    count: int | None,
    limit: int,
    follow: bool,
    ops: tuple[str, ...],
    job: str | None,
    as_json: bool,
) -> None:
    """The trace ledger: who did what on the server, oldest of the newest N (COUNT, or -n) first.

    \b
      jobcast trace 50
      jobcast trace -n 50
      jobcast trace -f --op job.finish
    """

    def show(entry: TraceEntry) -> None:
        if (ops and entry.op not in ops) or (job and entry.job != job):
            return
        click.echo(entry.model_dump_json() if as_json else _line(entry))
        sys.stdout.flush()

    limit = count or limit
    with target.client() as client:
        newest = client.trace(limit=1)
        last = newest[0].seq if newest else 0
        for entry in reversed(client.trace(limit=limit, ops=ops, job=job)):
            show(entry)
            last = max(last, entry.seq)
        if not follow:
            return
        # `seq` has no holes: a jump means entries written before the stream was connected (or
        # while it reconnected), fetched from the ledger itself, so none is missed or doubled.
        for entry in client.follow_trace(after=last):
            if entry.seq > last + 1:
                missed = client.trace(limit=10_000, after=last)
                for gap in reversed(missed):
                    if gap.seq < entry.seq:
                        show(gap)
            show(entry)
            last = entry.seq


COMMANDS = [paste, trace]
