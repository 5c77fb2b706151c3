"""The `bolt` profile (seed 001, "Realtime Streaming Implementation Summary").

`GET api/executions/{id}/stream`: SSE of one execution (a job), each message
`event: TYPE` + `{type, executionId, timestamp, data}`: `start` on connecting, then the job's
`command` (`{command}`), `stdout`/`stderr` (`{output}`), `status` (`{status}`: running, success,
failed), and at its end `complete` (it succeeded) or `error` (`{error}`: it did not, or jobcast
reported an `error` event). `id:` is the job event's seq, so `Last-Event-ID` resumes; a finished
execution streams what it had and ends at once; a comment heartbeat every 2 x heartbeat_seconds
(30 s by default, as the document's). `GET api/streaming/stats`: `{activeExecutions}`.
`POST api/executions` and `POST api/nodes/{node}/command` (`{command, expertMode}`) start one:
202 `{executionId, status, message}`. Errors are `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ...config import Scope
from ...models import Event, EventType, JobSpec, JobStatus
from ..auth import Rule, visible_job
from ..follow import TransportWriter, chunked, follow_job
from ..http import json_response, parse_body
from ..jobs import start_job
from ..sse import open_stream, resume_point, run_stream
from ..state import STATE, Follower
from . import Profile, Route
from .sse import cached, iso, message

__all__ = ["PROFILE"]

KIND = "bolt"
#: jobcast's statuses as the document's `status` events name them
_STATUS = {
    JobStatus.RUNNING: "running",
    JobStatus.SUCCEEDED: "success",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
    JobStatus.TIMED_OUT: "failed",
    JobStatus.LOST: "failed",
}


def _data(ev: Event) -> tuple[str, Any] | None:
    """The event as (type, data) of the document; None for what it has no event for."""
    if ev.type is EventType.COMMAND:
        argv = ev.data.get("argv") or []
        return "command", {"command": shlex.join(argv)}
    if ev.type in (EventType.STDOUT, EventType.STDERR):
        text = (ev.raw or b"").decode("utf-8", "replace")
        return ev.type.value, {"output": text}
    if ev.type is EventType.STATUS:
        status = _STATUS.get(JobStatus(ev.data["status"]))
        return None if status is None else ("status", {"status": status})
    if ev.type is EventType.COMPLETE:
        d = ev.data
        result = {
            "status": _STATUS.get(JobStatus(d["status"]), d["status"]),
            "exitCode": d.get("exit_code"),
            "signal": d.get("signal"),
            "duration": d.get("duration"),
        }
        if d["status"] == JobStatus.SUCCEEDED:
            return "complete", result
        why = d.get("reason") or f"the command ended {d['status']} (exit code {d.get('exit_code')})"
        return "error", {**result, "error": why}
    if ev.type is EventType.ERROR:
        return "error", {"error": ev.data.get("message", ""), "code": ev.data.get("code")}
    return None


def _encode(ev: Event) -> bytes:
    found = _data(ev)
    if found is None:
        return b""
    kind, data = found
    body = {"type": kind, "executionId": ev.job, "timestamp": iso(ev.ts), "data": data}
    return message(body, event=kind, ident=ev.seq)


def _frame(ev: Event) -> bytes:
    return cached(ev, KIND, _encode)


async def execution_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    job = await visible_job(request)
    after = resume_point(request) or 0
    if job.status.is_final and after and after >= job.last_seq:
        return web.Response(status=204)  # all seen: EventSource stops reconnecting
    resp = await open_stream(request)
    start = {"message": "Connected to execution stream"}
    now = iso(time.time())
    body = {"type": "start", "executionId": job.id, "timestamp": now, "data": start}
    await resp.write(message(body, event="start"))
    follower = Follower(KIND, job.id, request.transport)
    envelope = chunked if resp.chunked else None
    beat = b": heartbeat\n\n"
    loop = follow_job(
        state,
        follower,
        job.id,
        after,
        _frame,
        KIND + ("c" if envelope else ""),
        TransportWriter(request),
        envelope(beat) if envelope else beat,
        envelope,
        interval=2 * state.settings.heartbeat_seconds,
    )
    await run_stream(request, follower, loop)
    return resp


async def streaming_stats(request: web.Request) -> web.Response:
    followers = request.app[STATE].stats.followers
    active = {f.job for f in followers if f.kind == KIND}
    return json_response({"activeExecutions": len(active)})


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    command: str = Field(..., min_length=1, description="A shell command line.")
    #: the document streams only in expert mode; jobcast streams every job
    expertMode: bool = False


async def _start(request: web.Request, labels: dict[str, str]) -> web.Response:
    async def read() -> JobSpec:
        body = await parse_body(request, CommandRequest)
        return JobSpec(command=body.command, labels=labels)

    job = await start_job(request, read)
    answer = {"executionId": job.id, "status": "running", "message": "Command execution started"}
    return json_response(answer, 202)


async def create_execution(request: web.Request) -> web.Response:
    return await _start(request, {})


async def node_command(request: web.Request) -> web.Response:
    return await _start(request, {"node": request.match_info["node"][:200]})


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code.upper(), "message": message}}


PROFILE = Profile(
    name="bolt",
    title="Bolt realtime streaming",
    seed="001_bab56ae1d5ffe00c.txt",
    routes=(
        Route(
            "GET",
            "/api/executions/{ref}/stream",
            execution_stream,
            Rule(Scope.READ, in_query=True),
        ),
        Route("GET", "/api/streaming/stats", streaming_stats, Rule(Scope.READ)),
        Route("POST", "/api/executions", create_execution, Rule(Scope.RUN)),
        Route("POST", "/api/nodes/{node}/command", node_command, Rule(Scope.RUN)),
    ),
    error=_error,
)
