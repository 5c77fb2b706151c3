"""The `agents` profile (seed 003, "Phase 3A: Server-Sent Events"): an agent is a named job.

`GET api/agents/{name}/stream`: SSE, each message `event: TYPE` + `{type, timestamp, agent_name,
data}`: `connected` (`{client_id, message}`) on connecting, then the agent's output one `log`
`{line, line_num, stream}` per line (jobcast's line view: the numbers are those of its
extractions), `extraction` `{pattern, value, line_num}` after its line, `state` `{state, status}`
(`started` once it runs, then its final status), `error` `{error, code}`, and `complete`
`{exit_code, duration, status}`, which ends the stream; `ping` when idle, every
heartbeat_seconds (15 s by default, as the document's). `id:` counts the messages after
`connected`, so `Last-Event-ID` resumes exactly there. `GET api/sse/stats`: `{total_agents,
total_clients, agents: {name: clients}}`. `POST api/agents` `{name, command | args, pty,
extractors: [{name, pattern}]}` creates one. Errors are `{"error": message}`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...config import Scope
from ...errors import JobNotFound, ValidationFailed
from ...extract import Extractor
from ...models import Event, EventType, JobSpec, JobStatus
from ..auth import IDENTITY, Rule, visible_job
from ..follow import TransportWriter
from ..http import describe, header_int, json_response, parse_body
from ..jobs import start_job
from ..lines import Item, LineQuery, LineView
from ..sse import open_stream, run_stream
from ..state import STATE, Follower, State
from . import Profile, Route
from .sse import iso, message

__all__ = ["PROFILE"]

KIND = "agents"
_ALSO = frozenset({EventType.STATUS, EventType.ERROR})


def _envelope(kind: str, ts: float, name: str, data: Any, ident: int | None = None) -> bytes:
    body = {"type": kind, "timestamp": iso(ts), "agent_name": name, "data": data}
    return message(body, event=kind, ident=ident)


def _item(item: Item | Event, ts: float, name: str, ident: int) -> bytes:
    if isinstance(item, dict):
        line = {"line": item["line"], "line_num": item["line_no"], "stream": item["stream"]}
        return _envelope("log", ts, name, line, ident)
    d = item.data
    if item.type is EventType.EXTRACTION:
        found = {"pattern": d["name"], "value": d["value"], "line_num": d.get("line_no")}
        return _envelope("extraction", ts, name, found, ident)
    if item.type is EventType.STATUS:
        status = d["status"]
        state = {"state": "started" if status == JobStatus.RUNNING else status, "status": status}
        return _envelope("state", ts, name, state, ident)
    if item.type is EventType.COMPLETE:
        done = {
            "exit_code": d.get("exit_code"),
            "duration": d.get("duration"),
            "status": d["status"],
        }
        return _envelope("complete", ts, name, done, ident)
    return _envelope("error", ts, name, {"error": d.get("message"), "code": d.get("code")}, ident)


def _messages(view: LineView, ev: Event, name: str, count: int, last: int) -> tuple[bytes, int]:
    """The bytes of the messages `ev` makes past the `last`-th, and the count after them."""
    items = view.feed([ev])
    first, count = count + 1, count + len(items)
    if not items or count <= last:
        return b"", count
    if first <= last:  # a resume inside this event's messages: this client's own bytes
        own = (_item(it, ev.ts, name, first + i) for i, it in enumerate(items) if first + i > last)
        return b"".join(own), count
    data = ev.cache.get(KIND)
    if data is None:
        data = b"".join(_item(it, ev.ts, name, first + i) for i, it in enumerate(items))
        ev.remember(KIND, data)
    return data, count


async def _follow(
    state: State, follower: Follower, job_id: str, name: str, last: int, write: TransportWriter
) -> None:
    """Write the agent's messages past the `last`-th until its `complete`.

    The line view runs for each client from the log's start (the messages are counted there);
    the bytes of an event's messages are cached on it, the same for every client past them.
    """
    store = state.store
    view = LineView(job_id, LineQuery(), events=True, also=_ALSO)
    after, count = view.start, 0
    last_write = time.monotonic()
    while True:
        events = await store.read(job_id, after)
        if events:
            after = events[-1].seq
            parts: list[bytes] = []
            for ev in events:
                data, count = _messages(view, ev, name, count, last)
                if data:
                    parts.append(data)
            del events
            if parts:
                data = b"".join(parts)
                await state.guarded(follower, write(data))
                last_write = time.monotonic()
                follower.events_sent += len(parts)
                follower.bytes_sent += len(data)
            if view.done:
                return
            continue
        if state.closing or store.closed or write.transport.is_closing():
            return
        if not store.is_live(job_id):
            job = await store.get_job(job_id)
            if job.status.is_final and after >= job.last_seq:
                return
        if time.monotonic() - last_write >= state.settings.heartbeat_seconds:
            await state.guarded(follower, write(_envelope("ping", time.time(), name, {})))
            last_write = time.monotonic()
        await store.wait(job_id, after)


async def _count(state: State, job_id: str) -> int:
    """How many messages a finished agent's stream has after `connected`."""
    view = LineView(job_id, LineQuery(), events=True, also=_ALSO)
    after, count = view.start, 0
    while events := await state.store.read(job_id, after):
        after = events[-1].seq
        count += len(view.feed(events))
    return count


async def agent_stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    job = await visible_job(request)
    name = job.name or job.id
    last = header_int(request, "Last-Event-ID") or 0
    if last and job.status.is_final and last >= await _count(state, job.id):
        return web.Response(status=204)  # all seen: EventSource stops reconnecting
    resp = await open_stream(request)
    hello = {"client_id": uuid.uuid4().hex, "message": "Connected to agent stream"}
    await resp.write(_envelope("connected", time.time(), name, hello))
    follower = Follower(KIND, job.id, request.transport)
    write = TransportWriter(request, chunk=resp.chunked)
    await run_stream(request, follower, _follow(state, follower, job.id, name, last, write))
    return resp


async def sse_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    clients: dict[str, int] = {}
    for f in state.stats.followers:
        if f.kind == KIND and f.job is not None:
            clients[f.job] = clients.get(f.job, 0) + 1
    agents: dict[str, int] = {}
    identity = request[IDENTITY]
    for job_id, n in clients.items():
        try:
            job = await state.store.get_job(job_id)
        except JobNotFound:
            continue
        if identity.sees(job.labels):  # a token limited to labels learns of its agents only
            agents[job.name or job.id] = n
    return json_response(
        {"total_agents": len(agents), "total_clients": sum(agents.values()), "agents": agents}
    )


class AgentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="The agent's name: the job's, unique while it runs.")
    command: str | None = Field(None, description="A shell command line.")
    args: list[str] | None = Field(None, description="Or a program and its arguments.")
    pty: bool = False
    extractors: list[Extractor] = Field(default_factory=list)


async def create_agent(request: web.Request) -> web.Response:
    async def read() -> JobSpec:
        body = await parse_body(request, AgentRequest)
        try:
            return JobSpec(
                name=body.name,
                command=body.command,
                argv=body.args,
                pty=body.pty,
                extract=body.extractors,
            )
        except ValidationError as e:
            raise ValidationFailed(describe(e)) from None

    job = await start_job(request, read)
    return json_response({"name": job.name, "id": job.id, "status": job.status.value}, 201)


def _error(status: int, code: str, text: str) -> dict[str, Any]:
    return {"error": text}


PROFILE = Profile(
    name="agents",
    title="Agent SSE, phase 3A",
    seed="003_50eaa409a80d9777.txt",
    routes=(
        Route("GET", "/api/agents/{ref}/stream", agent_stream, Rule(Scope.READ, in_query=True)),
        Route("GET", "/api/sse/stats", sse_stats, Rule(Scope.READ)),
        Route("POST", "/api/agents", create_agent, Rule(Scope.RUN)),
    ),
    error=_error,
)
