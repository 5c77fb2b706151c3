"""GET /jobs/{id}/asciicast: the job's recording as asciicast v2, streamed from its event log;
its recorded input (`i` events) only for a token that may drive the job."""

from __future__ import annotations

import contextlib

from aiohttp import web

from ..asciicast import DEFAULT_TERM, CastEncoder, header
from ..errors import JobcastError, JobNotFound
from ..models import Job
from .auth import IDENTITY, visible_job
from .control import may_see_input
from .state import STATE, State

__all__ = ["routes"]

routes = web.RouteTableDef()

MEDIA_TYPE = "application/x-asciicast"


async def _terminal(state: State, job: Job) -> tuple[int, int, str]:
    """The size the job's terminal started with and its TERM; a default for what has none."""
    try:
        spec = await state.store.job_spec(job.id)
    except (JobcastError, ValueError):
        return 80, 24, DEFAULT_TERM  # a source, or a spec this version cannot read
    return spec.cols, spec.rows, spec.env.get("TERM", DEFAULT_TERM)


@routes.get("/jobs/{ref}/asciicast", allow_head=False)
async def job_asciicast(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    job = await visible_job(request)
    cols, rows, term = await _terminal(state, job)
    # What the log holds now: a running job's recording ends where it has got to.
    job_id, last = job.id, job.last_seq
    # What was typed is for those who may type into the job themselves; others watch it.
    inputs = await may_see_input(state, request[IDENTITY], job)
    encoder = CastEncoder(job, inputs=inputs)
    disposition = f'inline; filename="{job.name or job.id}.cast"'
    resp = web.StreamResponse(
        headers={"Content-Type": MEDIA_TYPE, "Content-Disposition": disposition}
    )
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    # Once the answer has begun, a job deleted meanwhile can only cut it short.
    with contextlib.suppress(ConnectionError, JobNotFound):
        await resp.write(header(job, cols, rows, term))
        del job
        after = 0
        while after < last:
            events = [ev for ev in await state.store.read(job_id, after) if ev.seq <= last]
            if not events:
                break  # deleted meanwhile
            after = events[-1].seq
            if data := encoder.encode(events):
                await resp.write(data)
        if data := encoder.finish():
            await resp.write(data)
        await resp.write_eof()
    return resp
