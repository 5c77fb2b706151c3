"""Reloading the config file: on SIGHUP, and when the file changes.

The file is read and checked in a thread (the loop never waits for the disk); a file that does
not load keeps the policy in force, and the log says why. Only `[policy]`, `[templates]` and
`log_level` take effect at once (a `--log-level` flag or JOBCAST_LOG_LEVEL still wins over the
file, as at start); the other settings are read at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from ..config import ConfigError, Settings
from ..policy import Policy
from ..serverlog import set_level
from .state import State

__all__ = ["reload_config", "watch_config"]

logger = logging.getLogger("jobcast.policy")

#: how often the config file's modification time and size are looked at
WATCH_INTERVAL = 1.0

_Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    # The inode too: editors save by writing a new file and renaming it over the old one.
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _load(settings: Settings) -> tuple[Policy, str]:
    now = settings.reread()
    return now.controls(), now.log_level


async def reload_config(state: State, why: str) -> bool:
    """Load the config file's policy, templates and log level into `state`; False (and all
    kept as it was) if the file does not load."""
    path = state.settings.config
    if path is None:
        logger.warning("%s, but the server has no config file to reload", why)
        return False
    async with state.reloading:
        try:
            policy, level = await asyncio.to_thread(_load, state.settings)
        except (ConfigError, ValueError) as e:
            logger.error("%s, but it does not load (%s); the policy in force stays", why, e)
            return False
        state.policy = policy
        state.supervisor.set_max_running(policy.max_running_jobs or state.settings.max_running_jobs)
        # Under the lock: a SIGHUP and the watcher seeing the same edit log the change once.
        set_level(level, why)
    c = policy.config
    logger.info(
        "%s: policy reloaded (mode %s, %d allow and %d deny patterns, %d templates)",
        why,
        c.mode,
        len(c.allow),
        len(c.deny),
        len(policy.templates),
    )
    return True


async def watch_config(state: State, interval: float = WATCH_INTERVAL) -> None:
    """Reload whenever the config file's stamp changes; until cancelled."""
    path = state.settings.config
    if path is None:
        return
    last = await asyncio.to_thread(_stamp, path)
    while True:
        await asyncio.sleep(interval)
        now = await asyncio.to_thread(_stamp, path)
        if now != last and now is not None:
            last = now
            await reload_config(state, f"config file {str(path)!r} changed")
