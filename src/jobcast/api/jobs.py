"""The /jobs JSON endpoints: create, list, get, cancel, input, signal, resize, interrupt, delete."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import BadRequest, JobFinished, NameTaken, PolicyDenied, ValidationFailed
from ..models import (
    JOB_KINDS,
    InputRequest,
    Job,
    JobKind,
    JobList,
    JobSpec,
    JobStatus,
    ResizeRequest,
    SignalRequest,
)
from .auth import IDENTITY, visible_job
from .control import check_control
from .http import json_response, parse_body, query_int
from .ledger import Op, request_identity, traced
from .state import STATE, State
from .webhooks import check_job_webhook

__all__ = ["routes", "start_job"]

routes = web.RouteTableDef()


def _admit(request: web.Request, state: State, spec: JobSpec, op: Op) -> JobSpec:
    """The policy's say on `spec`: refused (403 naming the rule, traced `policy.deny`), over a
    limit (429), or the spec that runs (a template expanded, default limits applied)."""
    policy = state.policy
    if spec.template is not None:
        op.detail["template"] = spec.template
    mine = 0
    if policy.config.max_jobs_per_token is not None:
        who = request_identity(request)
        mine = sum(1 for owner in state.owners.values() if owner == who)
    try:
        check_job_webhook(state, spec)
        policy.check(spec, request[IDENTITY].scopes, mine)
    except PolicyDenied as e:
        op.recorded_as = "policy.deny"
        op.detail["rule"] = e.rule
        raise
    sup = state.supervisor
    policy.admit(sup.running(), sup.queued() + state.admitting, sup.max_running)
    return policy.resolve(spec)


async def start_job(request: web.Request, read: Callable[[], Awaitable[JobSpec]]) -> Job:
    """Start the job that `read` makes of the request, as `POST /jobs` does for every way of
    asking (`/chat`, `/direct` too): the policy's checks and limits, its context resolved, one
    `job.create` in the ledger (refusals and bad input included, since `read` runs inside it)."""
    state = request.app[STATE]
    admitted = False
    try:
        async with traced(request, "job.create") as op:
            spec = _admit(request, state, await read(), op)
            limit = request[IDENTITY].labels
            if limit:
                # Its jobs carry its labels, whatever it asked: it must see and drive them.
                spec = spec.model_copy(update={"labels": {**spec.labels, **limit}})
            # Counted as queued from here: requests in flight together cannot overfill the queue.
            state.admitting += 1
            admitted = True
            if spec.context:
                try:
                    await asyncio.to_thread(state.pastes.resolve, spec.context)
                except LookupError as e:
                    raise ValidationFailed(
                        f"context: no paste {e.args[0]} on this server; store it with POST /pastes"
                    ) from None
            try:
                job = await state.store.create_job(spec)
            except NameTaken:
                if not limit:
                    raise
                # The name's holder may be a job this token must not know of: not named here.
                raise NameTaken(
                    f"the name {spec.name!r} is held by a job that has not finished; choose "
                    "another name or wait for it to end"
                ) from None
            op.job = job.id
            op.detail["argv"] = [arg[:200] for arg in job.argv[:20]]
            # Run once its `job.create` is queued (its start, traced as it happens, comes after
            # it in the ledger), not once written: the job starts while the entry is written.
            op.then = functools.partial(state.supervisor.submit, job, spec)
    finally:
        if admitted:
            state.admitting -= 1
    return job  # as created: its runner has not run yet


@routes.post("/jobs")
async def create_job(request: web.Request) -> web.Response:
    return json_response(await start_job(request, lambda: parse_body(request, JobSpec)), 201)


@routes.get("/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    q = request.query
    status = None
    if q.get("status"):
        try:
            status = JobStatus(q["status"])
        except ValueError:
            valid = ", ".join(s.value for s in JobStatus)
            raise BadRequest(f"unknown status {q['status']!r}; use one of {valid}") from None
    kind: JobKind | None = None
    if q.get("kind"):
        kind = next((k for k in JOB_KINDS if k == q["kind"]), None)
        if kind is None:
            raise BadRequest(f"unknown kind {q['kind']!r}; use one of {', '.join(JOB_KINDS)}")
    labels = {}
    for item in q.getall("label", []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadRequest(f"label filter {item!r} must look like key=value")
        labels[key] = value
    for key, value in request[IDENTITY].labels.items():
        if labels.setdefault(key, value) != value:
            return json_response(JobList(jobs=[]))  # asks for jobs this token may not see
    limit = query_int(request, "limit", 50, minimum=1) or 50
    page = await request.app[STATE].store.list_jobs(
        status=status,
        label=labels,
        name=q.get("name") or None,
        kind=kind,
        limit=min(limit, 1000),
        cursor=q.get("cursor"),
    )
    return json_response(page)


@routes.get("/jobs/{ref}")
async def get_job(request: web.Request) -> web.Response:
    return json_response(await visible_job(request))


@routes.delete("/jobs/{ref}")
async def delete_job(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    job = await visible_job(request)
    async with traced(request, "job.delete", job.id):
        await store.delete_job(job.id)
    return web.Response(status=204)


@routes.post("/jobs/{ref}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    check_control(state, request[IDENTITY], job, "cancelling it")
    # Traced before it acts, so the job's end (`job.finish`) comes after it in the ledger.
    async with traced(request, "job.cancel", job.id) as op:
        if job.status.is_final:
            op.detail["status"] = job.status.value
    if not job.status.is_final:  # cancelling a finished job changes nothing: 200 with it
        with contextlib.suppress(JobFinished):  # it finished meanwhile
            await state.supervisor.cancel(job.id)
    return json_response(await state.store.get_job(job.id))


@routes.post("/jobs/{ref}/input")
async def send_input(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    check_control(state, request[IDENTITY], job, "sending it input")
    if request.content_type == "application/octet-stream":
        data, eof = await request.read(), request.query.get("eof") in ("1", "true")
    else:
        body = await parse_body(request, InputRequest)
        if body.b64 is not None:
            try:
                data = base64.b64decode(body.b64, validate=True)
            except ValueError:  # binascii.Error, or a non-ASCII character
                raise BadRequest("`b64` is not valid base64") from None
        else:
            data = (body.data or "").encode()
        eof = body.eof
    # The size only: what is typed (a password, say) never reaches the ledger.
    async with traced(request, "job.input", job.id, bytes=len(data), eof=eof):
        written = await state.supervisor.write_input(job.id, data, eof=eof)
    return json_response({"written": written})


@routes.post("/jobs/{ref}/signal")
async def send_signal(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    check_control(state, request[IDENTITY], job, "signalling it")
    async with traced(request, "job.signal", job.id) as op:
        body = await parse_body(request, SignalRequest)
        op.detail["signal"] = str(body.signal)[:32]
        name = await state.supervisor.signal(job.id, str(body.signal))
        op.detail["signal"] = name
    return json_response({"signal": name})


@routes.post("/jobs/{ref}/resize")
async def resize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    check_control(state, request[IDENTITY], job, "resizing it")
    body = await parse_body(request, ResizeRequest)
    await state.supervisor.resize(job.id, body.cols, body.rows)
    return json_response({"cols": body.cols, "rows": body.rows})


@routes.post("/jobs/{ref}/interrupt")
async def interrupt(request: web.Request) -> web.Response:
    """Ctrl-C as at the job's terminal (see Supervisor.interrupt); no body."""
    state = request.app[STATE]
    job = await visible_job(request)
    check_control(state, request[IDENTITY], job, "interrupting it")
    async with traced(request, "job.interrupt", job.id) as op:
        op.detail["how"] = await state.supervisor.interrupt(job.id)
    return json_response({"interrupted": op.detail["how"]})
