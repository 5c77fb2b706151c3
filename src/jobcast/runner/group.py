"""Process groups through /proc and kill(): signal, liveness (zombies aside), identity, ending."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from ..store.base import ProcessInfo

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


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """Fields 3 on of /proc/PID/stat (index 0 is the state), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ")".
    return stat[stat.rindex(b")") + 2 :].split()


def read_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if there is no such process."""
    fields = _stat_fields(pid)
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
    """Whether a live (not zombie) process is left in the group."""
    if not signal_group(pgid, 0):
        return False
    # kill() also finds zombies, which an init that reaps slowly (or never, in some containers)
    # leaves behind: only a look at their state tells. Rare, so the scan of /proc is affordable.
    with os.scandir("/proc") as entries:
        for entry in entries:
            fields = _stat_fields(entry.name) if entry.name.isdigit() else None
            if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


async def _group_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_GROUP_POLL)
    return True


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
