"""Descendants that leave their job's process group: adopted, reaped, found by job id and ended.

A daemon double-forks and calls setsid(): it leaves the job's process group, and its parent exits,
so it is reparented. With this server as the child subreaper (Linux) it is reparented here rather
than to init: it stays a descendant of the server, where `end_strays` finds it by the job id in
its environment (`JOBCAST_JOB_ID`), and `reap_orphans` collects it once it has exited, so none
lingers as a zombie.

Reaping must never take the exit status of a child whose owner waits for it: the runner's job
leaders (reaped through Popen and their pidfd; the runner registers them with `own`) and whatever
else this process spawns (asyncio's or libuv's children). Jobs run in sessions of their own, and
nothing else does here, so an adopted orphan is told apart as an exited child that is not the
runner's own and whose session is not the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal

from .procfs import stat_fields

__all__ = [
    "JOB_ID_ENV",
    "disown",
    "end_strays",
    "own",
    "reap_orphans",
    "reap_periodically",
    "set_subreaper",
]

logger = logging.getLogger("jobcast.runner")

#: set in every job's environment to the job's id: how its escaped descendants are recognised
JOB_ID_ENV = "JOBCAST_JOB_ID"

_PR_SET_CHILD_SUBREAPER = 36
#: how often adopted orphans are reaped: one waitid() call when there are none
REAP_INTERVAL = 0.5
#: a stray may fork more strays while it is ended: look again, this many times at most
_ROUNDS = 3
#: after SIGKILL, how long to wait for a stray to be gone
_KILL_WAIT = 5.0

# Updated on the event loop's thread, where the runner spawns and where `reap_orphans` runs.
_own: set[int] = set()
#: whether this process is the subreaper: only then can it have orphans to reap
_adopting = False


def own(pid: int) -> None:
    """Mark `pid` as a child whose owner reaps it: `reap_orphans` leaves it alone."""
    _own.add(pid)


def disown(pid: int) -> None:
    """`pid` has been reaped by its owner."""
    _own.discard(pid)


def set_subreaper(on: bool = True) -> bool:
    """Make this process the reaper of its orphaned descendants (`prctl(PR_SET_CHILD_SUBREAPER)`).

    Returns whether it took effect; only Linux has it.
    """
    global _adopting
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        zero = ctypes.c_ulong(0)
        done = bool(
            libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(int(on)), zero, zero, zero) == 0
        )
    except (OSError, AttributeError):
        done = False
    _adopting = on and done
    if not done and on:
        logger.warning(
            "cannot become the child subreaper: daemons that jobs start escape to init and are "
            "not ended with their job"
        )
    return done


def _children() -> list[int]:
    """The pids of this process's children (each thread's list: a child belongs to its forker)."""
    pids: list[int] = []
    with os.scandir("/proc/self/task") as tasks:
        for task in tasks:
            with contextlib.suppress(OSError), open(f"{task.path}/children", "rb") as f:
                pids += map(int, f.read().split())
    return pids


def reap_orphans() -> int:
    """Reap the exited orphans this process adopted; return how many. Call on the loop's thread."""
    if not _adopting:
        return 0
    try:
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return 0
    except ChildProcessError:
        return 0
    session = os.getsid(0)
    reaped = 0
    for pid in _children():
        if pid in _own:
            continue
        fields = stat_fields(pid)
        if fields is None or fields[0] != b"Z" or int(fields[3]) == session:
            continue
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
            reaped += 1
    return reaped


async def reap_periodically(interval: float = REAP_INTERVAL) -> None:
    """Reap adopted orphans every `interval` seconds, until cancelled.

    A timer rather than SIGCHLD: uvloop's libuv handles SIGCHLD for its own children, and a
    second handler for it would fight libuv's.
    """
    while True:
        await asyncio.sleep(interval)
        reap_orphans()


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _find_strays(job_id: str, own: frozenset[int]) -> list[tuple[int, int]]:
    """This server's live descendants whose environment has the job's id: (pid, start time) each.

    Blocking: reads all of /proc; call it in a thread.
    """
    # Each stray descends from a child of this server that is not a job's leader: without one,
    # there is none, and no need to read all of /proc.
    if not set(_children()) - own:
        return []
    children: dict[int, list[int]] = {}
    processes: dict[int, tuple[bytes, int]] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            fields = stat_fields(entry.name) if entry.name.isdigit() else None
            if fields is not None:
                pid = int(entry.name)
                children.setdefault(int(fields[1]), []).append(pid)
                processes[pid] = (fields[0], int(fields[19]))
    marker = f"{JOB_ID_ENV}={job_id}".encode()
    found: list[tuple[int, int]] = []
    todo = list(children.get(os.getpid(), ()))
    seen = set(todo)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
        state, start = processes[pid]
        if state not in (b"Z", b"X") and marker in _environ(pid):
            found.append((pid, start))
    return found


def _pin(pid: int, start: int) -> int | None:
    """A pidfd for the process `pid` if it is still the one that started at `start`."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    # Checked after the pidfd is open: from then on the pid cannot be reused under it.
    fields = stat_fields(pid)
    if fields is None or int(fields[19]) != start:
        os.close(fd)
        return None
    return fd


def _send(pidfd: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _exited(pidfds: list[int], within: float) -> list[int]:
    """Wait up to `within` seconds for the processes to exit; the pidfds of those still running."""
    loop = asyncio.get_running_loop()
    waits: dict[int, asyncio.Future[None]] = {}
    for fd in pidfds:
        waits[fd] = loop.create_future()
        # A pidfd reads as ready once its process has exited, whoever its parent is.
        loop.add_reader(fd, _settle, waits[fd])
    try:
        if waits:
            await asyncio.wait(waits.values(), timeout=within)
    finally:
        for fd in pidfds:
            loop.remove_reader(fd)
    return [fd for fd, fut in waits.items() if not fut.done()]


async def end_strays(job_id: str, grace: float) -> None:
    """End the job's descendants outside its process group: SIGTERM, SIGKILL after `grace`.

    Call once the job's own process has exited. Found by `JOBCAST_JOB_ID` in their environment
    and matched by start time, never by pid alone; those that were this server's children are
    reaped.
    """
    if not _adopting:
        # Then what the exited process left went to init (or a subreaper above): none is ours.
        return
    try:
        for _ in range(_ROUNDS):
            strays = await asyncio.to_thread(_find_strays, job_id, frozenset(_own))
            pidfds = [fd for fd in (_pin(pid, start) for pid, start in strays) if fd is not None]
            if not pidfds:
                break
            logger.info(
                "job %s: ending %d process(es) that left its process group", job_id, len(pidfds)
            )
            try:
                for fd in pidfds:
                    _send(fd, signal.SIGTERM)
                    # A stopped process acts on SIGTERM only once continued.
                    _send(fd, signal.SIGCONT)
                left = await _exited(pidfds, grace)
                for fd in left:
                    _send(fd, signal.SIGKILL)
                await _exited(left, _KILL_WAIT)
            finally:
                for fd in pidfds:
                    os.close(fd)
    finally:
        reap_orphans()
