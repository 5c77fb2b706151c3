"""The `nstar` profile (seed 000, "nstar Streaming System"), as its server answered.

`GET stream`: the SSE firehose, every job's events as unnamed messages `{"type", "data"}` (what
an `EventSource`'s `onmessage` gets): `connected` first, then `job_start` (`{jobId, command,
argv, cwd, timestamp}`, when its command starts), `job_stdout`/`job_stderr` (`{jobId, chunk}`),
`trace` (a ledger entry, for an admin token, as on `/stream`), and at a job's end
`job_complete` (it succeeded) or `job_error` (`{jobId, error, exitCode, status}`). `id:` is the
firehose position, so `Last-Event-ID` resumes. `POST chat` `{message, context, stream}` and
`POST direct` `{command, stream}` (`EXECUTE test --fast` runs the template `test`) run as
jobcast's `/chat` and `/direct` do and answer, once the job has ended, `{jobId, exitCode, result,
stdout, stderr, timestamp}` as nstar's did. `POST paste` `{text}`: `{id, ref, size}`.
`GET trace?limit=&mode=`: the newest entries, oldest first (`mode`: an operation such as
`job.create`, or a template's name). `GET status`: `{server, version, uptime, clients,
runningJobs, timestamp}`. Errors are `{"error": message}`.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

import orjson
from aiohttp import web

from ... import __version__
from ...config import Scope
from ...models import Event, EventType, JobStatus
from ...pastes import ref_of
from ...protocol import sse_comment
from ...trace import OPS, Entry
from ..auth import IDENTITY, Rule, job_filter
from ..chat import read_chat, read_direct
from ..follow import TransportWriter, chunked, follow_firehose
from ..http import json_response, query_int
from ..jobs import start_job
from ..pastes import store_paste
from ..sse import open_stream, resume_point, run_stream
from ..state import STATE, Follower, State
from . import Profile, Route
from .sse import cached, iso, message

__all__ = ["PROFILE"]

KIND = "nstar"
HEARTBEAT = sse_comment("ping")


def _data(ev: Event) -> tuple[str, dict[str, Any]] | None:
    if ev.type is EventType.COMMAND:
        argv = ev.data.get("argv") or []
        start = {"command": shlex.join(argv), "argv": argv, "cwd": ev.data.get("cwd")}
        return "job_start", {"jobId": ev.job, **start, "timestamp": iso(ev.ts)}
    if ev.type in (EventType.STDOUT, EventType.STDERR):
        chunk = (ev.raw or b"").decode("utf-8", "replace")
        return f"job_{ev.type.value}", {"jobId": ev.job, "chunk": chunk}
    if ev.type is EventType.COMPLETE:
        d = ev.data
        end = {"jobId": ev.job, "exitCode": d.get("exit_code"), "status": d["status"]}
        end |= {"signal": d.get("signal"), "duration": d.get("duration"), "timestamp": iso(ev.ts)}
        if d["status"] == JobStatus.SUCCEEDED:
            return "job_complete", end
        why = d.get("reason") or f"the job ended {d['status']} (exit code {d.get('exit_code')})"
        return "job_error", {**end, "error": why}
    return None


def _encode(ev: Event) -> bytes:
    found = _data(ev)
    if found is None:
        return b""
    kind, data = found
    return message({"type": kind, "data": data}, ident=ev.gid)


def _frame(ev: Event) -> bytes:
    return cached(ev, KIND, _encode)


def _trace_frame(entry: Entry) -> bytes:
    return b'data: {"type":"trace","data":' + entry.line.rstrip(b"\n") + b"}\n\n"


async def stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    after = resume_point(request)
    if after is None:
        after = state.store.last_gid()
    resp = await open_stream(request)
    await resp.write(message({"type": "connected", "timestamp": iso(time.time())}))
    follower = Follower(KIND, None, request.transport)
    envelope = chunked if resp.chunked else None
    loop = follow_firehose(
        state,
        follower,
        after,
        True,
        _frame,
        TransportWriter(request),
        envelope(HEARTBEAT) if envelope else HEARTBEAT,
        envelope,
        job_filter(state, request[IDENTITY]),
        with_trace=request[IDENTITY].allows(Scope.ADMIN),
        trace_frame=_trace_frame,
    )
    await run_stream(request, follower, loop)
    return resp


async def _until_done(state: State, job_id: str) -> tuple[bytes, bytes, dict[str, Any]]:
    """The job's stdout, stderr and `complete` data, once it has ended (or the server closes)."""
    out: list[bytes] = []
    err: list[bytes] = []
    after = 0
    while not state.closing:
        events = await state.store.read(job_id, after)
        for ev in events:
            if ev.type is EventType.STDOUT:
                out.append(ev.raw or b"")
            elif ev.type is EventType.STDERR:
                err.append(ev.raw or b"")
            elif ev.type is EventType.COMPLETE:
                return b"".join(out), b"".join(err), ev.data
        if events:
            after = events[-1].seq
        else:
            await state.store.wait(job_id, after)
    return b"".join(out), b"".join(err), {"status": "running", "exit_code": None}


async def _run(request: web.Request, direct: bool) -> web.Response:
    state = request.app[STATE]

    async def read() -> Any:
        spec, _ = await (read_direct(request) if direct else read_chat(request))
        return spec

    job = await start_job(request, read)
    out, err, end = await _until_done(state, job.id)
    stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    try:
        result = orjson.loads(stdout.strip())
    except orjson.JSONDecodeError:
        result = {"raw_stdout": stdout, "raw_stderr": stderr}
    answer = {"jobId": job.id, "exitCode": end.get("exit_code"), "status": end["status"]}
    answer |= {"result": result, "stdout": stdout, "stderr": stderr, "timestamp": iso(time.time())}
    return json_response(answer)


async def chat(request: web.Request) -> web.Response:
    return await _run(request, direct=False)


async def direct(request: web.Request) -> web.Response:
    return await _run(request, direct=True)


async def paste(request: web.Request) -> web.Response:
    digest, size = await store_paste(request)
    return json_response({"id": digest, "ref": ref_of(digest), "size": size})


async def trace(request: web.Request) -> web.Response:
    limit = min(query_int(request, "limit", 50, minimum=1) or 50, 10_000)
    mode = request.query.get("mode") or None
    ledger = request.app[STATE].trace
    if mode is None or mode in OPS:
        entries = await ledger.read(limit=limit, ops=frozenset({mode} if mode else ()))
    else:
        found = await ledger.read(limit=10_000)
        entries = [e for e in found if (e.get("detail") or {}).get("template") == mode][:limit]
    return json_response(entries[::-1])


async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response(
        {
            "server": "jobcast",
            "version": __version__,
            "uptime": round(time.time() - state.started, 3),
            "clients": len(state.stats.followers),
            "runningJobs": state.supervisor.running(),
            "timestamp": iso(time.time()),
        }
    )


def _error(status: int, code: str, text: str) -> dict[str, Any]:
    return {"error": text}


PROFILE = Profile(
    name="nstar",
    title="nstar streaming system",
    seed="000_6daadf9e4633a0fb.txt",
    routes=(
        Route("GET", "/status", status, Rule(None)),
        Route("GET", "/stream", stream, Rule(Scope.READ, in_query=True)),
        Route("POST", "/chat", chat, Rule(Scope.RUN)),
        Route("POST", "/direct", direct, Rule(Scope.RUN)),
        Route("POST", "/paste", paste, Rule(Scope.RUN)),
        Route("GET", "/trace", trace, Rule(Scope.ADMIN, every_job=True)),
    ),
    error=_error,
)
