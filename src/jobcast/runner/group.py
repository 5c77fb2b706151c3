"""Process groups through /proc and kill(): signal, liveness (zombies aside), identity, ending."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from ..store.base import ProcessInfo
from .procfs import stat_fields
from .reaper import reap_orphans

__all__ = [
    "end_group",
    "group_alive",
    "group_is_ours",
    "read_starttime",
    "same_process",
    "signal_group",
]

logger = logging.getLogger("jobcast.runner")

_GROUP_POLL = 0.02
#: while kill() still finds the group, the longest wait between looks in /proc for zombies only
_ZOMBIE_LOOK = 0.2


def read_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if there is no such process."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def same_process(info: ProcessInfo) -> bool:
    """Whether the process `info` recorded still runs: same pid and same start time."""
    pid, _, starttime = info
    return starttime != 0 and read_starttime(pid) == starttime


def group_is_ours(info: ProcessInfo) -> bool:
    """Whether the process group `info` recorded is still the job's, even with its leader gone.

    The leader, while it exists (a zombie too), is ours only with the recorded start time: its
    pid may have been reused. Once it is gone, any process left in the group is ours: Linux never
    hands out a pid that is still some group's id, so the group cannot have been reused.
    """
    pid, pgid, starttime = info
    current = read_starttime(pid)
    if current is not None:
        return starttime != 0 and current == starttime
    return signal_group(pgid, 0)


def signal_group(pgid: int, sig: int) -> bool:
    """Signal every process of the group; False if none is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        logger.warning("not allowed to signal process group %d", pgid)
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group.

    Blocking: reads all of /proc while the group exists; call it in a thread.
    """
    if not signal_group(pgid, 0):
        return False
    with os.scandir("/proc") as entries:
        for entry in entries:
            fields = stat_fields(entry.name) if entry.name.isdigit() else None
            if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


async def _group_gone(pgid: int, within: float) -> bool:
    """Wait up to `within` seconds until no live process is left in the group."""
    now = time.monotonic()
    deadline, look_at, look_every = now + within, now, _GROUP_POLL
    while True:
        # Zombies count for kill(): those reparented to this server are reaped here and now.
        reap_orphans()
        if not signal_group(pgid, 0):
            return True
        now = time.monotonic()
        if now >= look_at:
            # Zombies left to an init that reaps slowly (or never, in some containers) still
            # count: only their state in /proc tells, and reading all of it is for a thread.
            if not await asyncio.to_thread(group_alive, pgid):
                return True
            look_every = min(2 * look_every, _ZOMBIE_LOOK)
            look_at = time.monotonic() + look_every
        if now >= deadline:
            return False
        await asyncio.sleep(_GROUP_POLL)


async def end_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, SIGKILL what is left after `grace` seconds, wait until it is gone."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    # A stopped process acts on SIGTERM only once continued.
    signal_group(pgid, signal.SIGCONT)
    if await _group_gone(pgid, grace):
        return
    logger.info("process group %d outlived SIGTERM by %.1fs; sending SIGKILL", pgid, grace)
    signal_group(pgid, signal.SIGKILL)
    await _group_gone(pgid, 5.0)
