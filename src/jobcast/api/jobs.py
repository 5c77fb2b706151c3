"""The /jobs JSON endpoints: create, list, get, cancel, input, signal, resize, delete."""

from __future__ import annotations

import base64
import contextlib

from aiohttp import web

from ..config import Scope
from ..errors import BadRequest, JobFinished
from ..models import InputRequest, JobList, JobSpec, JobStatus, ResizeRequest, SignalRequest
from .auth import IDENTITY, require, visible_job
from .http import json_response, parse_body, query_int
from .state import STATE

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/jobs")
async def create_job(request: web.Request) -> web.Response:
    state = request.app[STATE]
    spec = await parse_body(request, JobSpec)
    require(request, Scope.EXEC, "a raw command (`command`, `argv`)")
    limit = request[IDENTITY].labels
    if limit:
        # Its jobs carry its labels, whatever it asked: it must see and drive what it starts.
        spec = spec.model_copy(update={"labels": {**spec.labels, **limit}})
    job = await state.store.create_job(spec)
    await state.supervisor.submit(job, spec)
    return json_response(await state.store.get_job(job.id), 201)


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
        limit=min(limit, 1000),
        cursor=q.get("cursor"),
    )
    return json_response(page)


@routes.get("/jobs/{ref}")
async def get_job(request: web.Request) -> web.Response:
    return json_response(await visible_job(request))


@routes.delete("/jobs/{ref}")
async def delete_job(request: web.Request) -> web.Response:
    job = await visible_job(request)
    await request.app[STATE].store.delete_job(job.id)
    return web.Response(status=204)


@routes.post("/jobs/{ref}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    if not job.status.is_final:  # cancelling a finished job changes nothing: 200 with it
        with contextlib.suppress(JobFinished):  # it finished meanwhile
            await state.supervisor.cancel(job.id)
    return json_response(await state.store.get_job(job.id))


@routes.post("/jobs/{ref}/input")
async def send_input(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
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
    written = await state.supervisor.write_input(job.id, data, eof=eof)
    return json_response({"written": written})


@routes.post("/jobs/{ref}/signal")
async def send_signal(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    body = await parse_body(request, SignalRequest)
    name = await state.supervisor.signal(job.id, str(body.signal))
    return json_response({"signal": name})


@routes.post("/jobs/{ref}/resize")
async def resize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    job = await visible_job(request)
    body = await parse_body(request, ResizeRequest)
    await state.supervisor.resize(job.id, body.cols, body.rows)
    return json_response({"cols": body.cols, "rows": body.rows})
