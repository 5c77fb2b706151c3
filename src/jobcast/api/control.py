"""Who may drive a job, beyond watching it: the `control` scope, and the job's `shared` setting.

`shared: "control"` (the default): any token with `control` types into the job, interrupts,
resizes, signals and cancels it. `shared: "view"`: only the token that created it (by its name,
and with `control`) or an `admin` token may; every other token, `control` or not, watches.
Watching needs `read` only, and a watcher never reaches the program.

A viewer's terminal emulator answers some of what the program prints by itself (device
attributes, cursor position, colours): those replies are dropped from a viewer's input without a
word, since its user typed none of them; anything else a viewer sends is refused.
"""

from __future__ import annotations

import re

from ..config import Scope
from ..errors import Forbidden, MissingScope
from ..models import Job
from .auth import Identity
from .state import State

__all__ = ["check_control", "may_control", "may_see_input", "strip_terminal_replies"]


def _creator(state: State, job: Job) -> str | None:
    # Kept by the ledger while the job has not finished, which is all the time it takes input;
    # in this process's memory, so a job queued before a restart has no creator (admin only).
    return state.owners.get(job.id)


def may_control(state: State, identity: Identity, job: Job) -> bool:
    if not identity.allows(Scope.CONTROL):
        return False
    if job.shared == "view" and not identity.allows(Scope.ADMIN):
        return _creator(state, job) == identity.name
    return True


async def may_see_input(state: State, identity: Identity, job: Job) -> bool:
    """Whether `identity` gets what was typed into `job` (its recording's `i` events): those who
    may drive it, and its creator (with `control`) after it has ended too, as the ledger's
    `job.create` names them once the creator is no longer kept in memory."""
    if not job.record_input:
        return False
    if may_control(state, identity, job):
        return True
    if job.shared != "view" or not identity.allows(Scope.CONTROL) or job.id in state.owners:
        return False
    found = await state.trace.read(limit=1, ops=frozenset({"job.create"}), job=job.id)
    return bool(found) and found[0]["outcome"] == "ok" and found[0]["who"] == identity.name


def check_control(state: State, identity: Identity, job: Job, what: str = "this") -> None:
    """Raise unless `identity` may drive `job` (`what` names the action for the message)."""
    if not identity.allows(Scope.CONTROL):
        raise MissingScope(f"token {identity.name!r} lacks the `control` scope, which {what} needs")
    if not may_control(state, identity, job):
        raise Forbidden(
            f"job {job.id} is shared view-only: only the token that started it or an admin "
            f"may drive it; token {identity.name!r} watches"
        )


# What terminals send unasked, in answer to a query in the output: DA1 `CSI ? ... c`, DA2
# `CSI > ... c`, DA3 `DCS ! | ... ST`, cursor position `CSI row ; col R` (and DECXCPR with `?`),
# status `CSI n`, window reports `CSI ... t`, focus `CSI I` / `CSI O`, mode reports
# `CSI ? ... $ y`, and OSC / DCS strings (colour answers, XTVERSION, DECRQSS).
_REPLY = re.compile(
    rb"\x1b\[[?>=]?[0-9;]*(?:c|R|n|t|\$y)"
    rb"|\x1b\[[IO]"
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    rb"|\x1bP[^\x1b]*\x1b\\"
)


def strip_terminal_replies(data: bytes) -> bytes:
    """`data` without the terminal's automatic replies in it."""
    return _REPLY.sub(b"", data)
