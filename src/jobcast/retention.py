"""Retention: which finished jobs to forget, oldest first, and the server's periodic pass.

Only finished jobs are ever chosen, and only they count towards the limits: a queued or running
job is neither deleted nor makes another one go. `select` is pure; `prune` applies it to a store
and logs a line per job deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .config import Settings
from .store.base import FinishedJob, Store
from .trace import Trace

__all__ = ["Policy", "Pruned", "prune", "prune_periodically", "select"]

logger = logging.getLogger("jobcast.retention")

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Policy:
    """A finished job goes if any rule says so; a rule left None says nothing."""

    #: seconds since it finished (0: every finished job)
    older_than: float | None = None
    #: finished jobs kept, the newest
    max_jobs: int | None = None
    #: output bytes (stdout and stderr) of the finished jobs kept, the newest
    max_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        days = settings.retention_days
        return cls(
            older_than=None if days is None else days * DAY,
            max_jobs=settings.retention_max_jobs,
            max_bytes=settings.retention_max_bytes,
        )

    @property
    def active(self) -> bool:
        return (self.older_than, self.max_jobs, self.max_bytes) != (None, None, None)


def select(
    jobs: Sequence[FinishedJob], policy: Policy, now: float
) -> list[tuple[FinishedJob, str]]:
    """The jobs to delete, each with the rule that chose it, from `jobs` ordered oldest first.

    Each rule chooses a run of the oldest jobs (by age, by count over the limit, by bytes over
    the limit), so the first job no rule chooses ends the run.
    """
    left = len(jobs)
    total = sum(j.output_bytes for j in jobs)
    out: list[tuple[FinishedJob, str]] = []
    for job in jobs:
        if policy.older_than is not None and now - job.finished_at >= policy.older_than:
            why = f"ended {_age(now - job.finished_at)} ago"
        elif policy.max_jobs is not None and left > policy.max_jobs:
            why = f"{left} finished jobs, more than {policy.max_jobs} kept"
        elif policy.max_bytes is not None and total > policy.max_bytes:
            why = f"finished jobs' output {total} bytes, more than {policy.max_bytes} kept"
        else:
            break
        out.append((job, why))
        left -= 1
        total -= job.output_bytes
    return out


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a pass deleted (or, in a dry run, would delete)."""

    deleted: list[str]
    #: output bytes of the deleted jobs
    bytes: int


async def prune(
    store: Store,
    policy: Policy,
    *,
    now: float | None = None,
    dry_run: bool = False,
    by: str = "retention",
) -> Pruned:
    """Apply `policy` now; a line in the log per job deleted, saying `by` whom and why."""
    if not policy.active:
        return Pruned([], 0)
    chosen = select(await store.finished_jobs(), policy, time.time() if now is None else now)
    if dry_run:
        return Pruned([j.id for j, _ in chosen], sum(j.output_bytes for j, _ in chosen))
    deleted = set(await store.delete_jobs([j.id for j, _ in chosen]))
    kept: list[str] = []
    size = 0
    for i, (job, why) in enumerate(chosen):
        if i % 100 == 99:
            await asyncio.sleep(0)  # thousands of log lines: let the loop serve in between
        if job.id in deleted:
            kept.append(job.id)
            size += job.output_bytes
            name = f" ({job.name})" if job.name else ""
            logger.info(
                "%s deleted job %s%s, %d bytes of output: %s",
                by,
                job.id,
                name,
                job.output_bytes,
                why,
            )
    return Pruned(kept, size)


async def prune_periodically(store: Store, policy: Policy, interval: float, trace: Trace) -> None:
    """The server's background task: a pass at once, then every `interval` seconds; each job it
    deletes is a `job.delete` by `retention` in the ledger."""
    while True:
        try:
            done = await prune(store, policy)
            if done.deleted:
                await trace.record_many(
                    [
                        ("job.delete", "retention", j, "ok", {"by": "retention"})
                        for j in done.deleted
                    ]
                )
        except Exception:
            # A failed pass (the disk full, say) is tried again next time, the server goes on.
            logger.exception("retention pass failed")
        await asyncio.sleep(interval)


def _age(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"
