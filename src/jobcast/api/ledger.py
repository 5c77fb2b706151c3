"""What the API writes to the trace ledger: who makes a request, each operation on a job with its
outcome, and the jobs' starts and ends, as the store records them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import JobcastError
from ..models import Event, EventType
from .auth import IDENTITY
from .state import STATE, State

__all__ = ["SERVER", "Lifecycle", "Op", "request_identity", "traced"]

logger = logging.getLogger("jobcast.trace")

#: `who` of what the server does by itself (a job recovered after a restart, say)
SERVER = "server"
#: the longest error message kept in an entry's detail
_MESSAGE_MAX = 300


def request_identity(request: web.BaseRequest) -> str:
    """Who makes `request`, as the ledger names them: the name of its token (`admin` for the
    generated one), `local` when the server runs without auth, `anonymous` before a WebSocket's
    first message. The one place that says it."""
    identity = request.get(IDENTITY)
    return identity.name if identity is not None else "anonymous"


@dataclass(slots=True)
class Op:
    """An operation being traced: the handler fills in the job and details as it learns them."""

    job: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: recorded as this operation instead (a `job.create` the policy refused is a `policy.deny`)
    recorded_as: str | None = None
    #: what follows the operation (starting the job it created): run once its entry is queued,
    #: so it comes after it in the ledger, while the entry is written
    then: Callable[[], Awaitable[None]] | None = None


async def record(request: web.Request, op: str, job: str | None = None, **detail: Any) -> None:
    """Record `op` as done, now: for an operation traced before it acts (a cancel, so that the
    job's `job.finish` comes after it in the ledger)."""
    state = request.app[STATE]
    await state.trace.record(op, who=request_identity(request), job=job, detail=detail)


@asynccontextmanager
async def traced(
    request: web.Request, op: str, job: str | None = None, **detail: Any
) -> AsyncIterator[Op]:
    """Record `op` once the body has run: outcome `ok`, or the code of the `JobcastError` it
    raised (which then goes on to the client); then the body's `then`, if it set one, while the
    entry is written. The answer is sent only after the entry is written, so every acknowledged
    operation is in the ledger."""
    state = request.app[STATE]
    who = request_identity(request)
    note = Op(job, detail)
    try:
        yield note
    except JobcastError as e:
        extra = {**note.detail, "error": e.message[:_MESSAGE_MAX]}
        name = note.recorded_as or op
        await state.trace.record(name, who=who, job=note.job, outcome=e.code, detail=extra)
        raise
    if note.job is not None and op == "job.create":
        state.owners[note.job] = who
    _, written = state.trace.submit([(op, who, note.job, "ok", note.detail)])
    try:
        if note.then is not None:
            await note.then()
    finally:
        await written


class Lifecycle:
    """Follows the store's firehose from global position `after` and records each job's start
    (`job.start`) and end (`job.finish`, its final status the outcome) under the identity that
    created the job. `run()` until cancelled, then `flush()` for what came meanwhile.
    Each of `observers` is handed every batch of lifecycle events too (metrics, the log)."""

    def __init__(
        self, state: State, after: int, observers: Sequence[Callable[[list[Event]], None]] = ()
    ) -> None:
        self._state, self.after, self._observers = state, after, observers

    async def run(self) -> None:
        store = self._state.store
        while not store.closed:
            if not await self.flush():
                self.after = max(self.after, store.last_gid())
                await store.wait_all(self.after)

    async def flush(self) -> bool:
        """Record the lifecycle events past `after` that are there now; False if there were none."""
        store, trace, owners = self._state.store, self._state.trace, self._state.owners
        found = False
        while events := await store.read_all(self.after):
            found = True
            # Moved on before the write is awaited: cancelled meanwhile, nothing is recorded twice.
            self.after = events[-1].gid
            for observe in self._observers:
                try:
                    observe(events)
                except Exception:
                    logger.exception("an observer of job lifecycles failed")
            items: list[tuple[str, str, str | None, str, dict[str, Any] | None]] = []
            for ev in events:
                if ev.type is EventType.STATUS and ev.data.get("status") == "running":
                    items.append(("job.start", owners.get(ev.job, SERVER), ev.job, "ok", None))
                elif ev.type is EventType.COMPLETE:
                    d = ev.data
                    detail = {k: d.get(k) for k in ("exit_code", "signal", "duration")}
                    if d.get("reason"):
                        detail["reason"] = d["reason"]
                    who = owners.pop(ev.job, SERVER)
                    items.append(("job.finish", who, ev.job, str(d.get("status")), detail))
            if items:
                await trace.record_many(items)
        return found
