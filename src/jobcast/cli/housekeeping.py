"""The housekeeping commands: rm, wait, prune. Thin layers over `jobcast.client`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from ..errors import JobcastError, JobNotFinished

if TYPE_CHECKING:
    from ..models import Job
    from .jobs import Target

__all__ = ["COMMANDS", "Duration", "Size"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class Duration(click.ParamType[Any]):
    """`7d`, `12h`, `30m`, `90s`, `2w`, or plain seconds; into seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)):
            return float(value)
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([smhdw]?)\s*", str(value).lower())
        if m is None:
            self.fail(f"{value!r} is no duration: write it like 7d, 12h, 30m or 90s", param, ctx)
        return float(m[1]) * _UNITS[m[2] or "s"]


class Size(click.ParamType[Any]):
    """`500M`, `10G`, `1GiB`, `2KB` (powers of 1024), or plain bytes; into bytes."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower())
        if m is None:
            self.fail(f"{value!r} is no size: write it like 500M, 10G or 1048576", param, ctx)
        return int(float(m[1]) * _SIZES[m[2]])


def _echo_deleted(ids: list[str], size: int, dry_run: bool) -> None:
    """The ids on stdout, one a line (for scripts); what it came to on stderr."""
    for job_id in ids:
        click.echo(job_id)
    verb = "would delete" if dry_run else "deleted"
    jobs = "1 job" if len(ids) == 1 else f"{len(ids)} jobs"
    click.echo(f"jobcast: {verb} {jobs}, {size} bytes of output", err=True)


@click.command()
@click.argument("jobs", nargs=-1)
@click.option("--finished", is_flag=True, help="Every finished job.")
@click.option(
    "--older-than",
    type=Duration(),
    metavar="AGE",
    help="Every finished job that ended longer ago than AGE (7d, 12h, 30m, 90s).",
)
@click.option("-n", "--dry-run", is_flag=True, help="With --finished/--older-than: only list them.")
@click.pass_obj
def rm(
    target: Target, jobs: tuple[str, ...], finished: bool, older_than: float | None, dry_run: bool
) -> None:
    """Delete JOBs (ids or names) with their output, or every finished job that matches
    --finished or --older-than. Prints the ids deleted.

    A queued or running job is never deleted: cancel it first (`jobcast cancel JOB`). Exits
    with 2 if any JOB could not be deleted; the others are deleted all the same.
    """
    if bool(jobs) == (finished or older_than is not None):
        raise click.UsageError("give JOBs, or --finished or --older-than (not both)")
    with target.client() as client:
        if not jobs:
            done = client.prune(older_than=older_than or 0.0, dry_run=dry_run)
            _echo_deleted(done.deleted, done.bytes, dry_run)
            return
        if dry_run:
            raise click.UsageError("--dry-run goes with --finished or --older-than")
        failed = False
        for ref in jobs:
            try:
                client.delete(ref)
            except JobNotFinished:
                failed = True
                click.echo(
                    f"jobcast: job {ref} has not finished: cancel it first "
                    f"(`jobcast cancel {ref}`), then rm it",
                    err=True,
                )
            except JobcastError as e:
                failed = True
                click.echo(f"jobcast: {e.message}", err=True)
            else:
                click.echo(ref)
    if failed:
        raise click.exceptions.Exit(2)


def _ending(job: Job, code: int) -> str:
    how = job.status.value
    if how == "failed":
        how += f", {job.signal}" if job.signal else f", exit {job.exit_code}"
    name = f" ({job.name})" if job.name else ""
    return f"jobcast: job {job.id}{name} {how} (exit status {code})"


@click.command()
@click.argument("jobs", nargs=-1, required=True)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing, only exit with the status.")
@click.pass_obj
def wait(target: Target, jobs: tuple[str, ...], quiet: bool) -> None:
    """Wait until every JOB (id or name) has finished, and exit with a status that says how.

    A line on stderr as each one ends. The exit status is 0 if they all succeeded, else that of
    the first JOB, in the order given, that did not; each as `jobcast run` gives it:

    \b
      N        the job's own exit code
      128+N    signal N ended it (130: SIGINT; 143: SIGTERM, as on cancel)
      124      it ran past its timeout
      143      it was cancelled before it ran
      255      it was lost (the server stopped while it ran)
      1        it could not start
      2        a JOB does not exist, or the server cannot be reached
      130      you pressed Ctrl-C (the jobs go on)
    """
    import asyncio

    from .render import exit_code_of

    async def main() -> int:
        async with target.async_client() as client:
            # All looked up first: a misspelt JOB fails now, not after the others ended.
            found = [await client.job(ref) for ref in jobs]
            codes: dict[str, int] = {}

            async def one(job: Job) -> None:
                ended = await client.wait(job.id)
                codes[job.id] = exit_code_of(ended.model_dump(mode="json"))
                if not quiet:
                    click.echo(_ending(ended, codes[job.id]), err=True)

            await asyncio.gather(*(one(job) for job in {j.id: j for j in found}.values()))
        return next((codes[j.id] for j in found if codes[j.id] != 0), 0)

    raise click.exceptions.Exit(asyncio.run(main()))


@click.command()
@click.option(
    "--older-than",
    type=Duration(),
    metavar="AGE",
    help="Finished jobs that ended longer ago than AGE (7d, 12h, 30m, 90s; 0: all).",
)
@click.option(
    "--max-jobs",
    type=click.IntRange(min=0),
    metavar="N",
    help="Keep only the newest N finished jobs.",
)
@click.option(
    "--max-bytes",
    type=Size(),
    metavar="SIZE",
    help="Keep only the newest finished jobs whose output fits in SIZE (500M, 10G).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Only list the jobs that would go.")
@click.pass_obj
def prune(
    target: Target,
    older_than: float | None,
    max_jobs: int | None,
    max_bytes: int | None,
    dry_run: bool,
) -> None:
    """Delete finished jobs now, oldest first, and give their disk space back.

    Without options, by the server's retention settings (retention_days, retention_max_jobs,
    retention_max_bytes), which it also applies by itself every minute; with options, by those
    instead. A job goes if any rule says so. Queued and running jobs are never deleted, nor
    counted. Prints the ids deleted, then a summary on stderr.

    \b
      jobcast prune                        apply the server's retention now
      jobcast prune --older-than 7d        finished more than a week ago
      jobcast prune --max-jobs 100 -n      which jobs beyond the newest 100 would go
    """
    with target.client() as client:
        done = client.prune(
            older_than=older_than, max_jobs=max_jobs, max_bytes=max_bytes, dry_run=dry_run
        )
    _echo_deleted(done.deleted, done.bytes, dry_run)


COMMANDS = [rm, wait, prune]
