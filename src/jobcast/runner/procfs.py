"""Reading /proc/PID/stat: a process's state, parent, group, session and start time."""

from __future__ import annotations

__all__ = ["stat_fields"]


def stat_fields(pid: int | str) -> list[bytes] | None:
    """Fields 3 on of /proc/PID/stat, or None if there is no such process.

    Index 0 is the state, 1 the parent's pid, 2 the process group, 3 the session, 19 the start
    time (clock ticks after boot).
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ")".
    return stat[stat.rindex(b")") + 2 :].split()
