"""Reloading the policy and templates from the config file: on SIGHUP, and when the file changes.

The file is read and checked in a thread (the loop never waits for the disk); a file that does
not load keeps the policy in force, and the log says why. Only `[policy]` and `[templates]` take
effect at once; the other settings are read at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from ..config import ConfigError, load_settings
from ..policy import Policy
from .state import State

__all__ = ["reload_policy", "watch_config"]

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


def _load(path: Path) -> Policy:
    return load_settings(path).controls()


async def reload_policy(state: State, why: str) -> bool:
    """Load the config file's policy and templates into `state`; False (and the old policy
    kept) if the file does not load."""
    path = state.settings.config
    if path is None:
        logger.warning("%s, but the server has no config file to reload", why)
        return False
    async with state.reloading:
        try:
            policy = await asyncio.to_thread(_load, path)
        except (ConfigError, ValueError) as e:
            logger.error("%s, but it does not load (%s); the policy in force stays", why, e)
            return False
        state.policy = policy
        state.supervisor.set_max_running(policy.max_running_jobs or state.settings.max_running_jobs)
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
            await reload_policy(state, f"config file {str(path)!r} changed")
