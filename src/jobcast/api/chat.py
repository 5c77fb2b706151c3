"""POST /chat and POST /direct: a template started from a message or from a command line.

Both start a job exactly as `POST /jobs {"template": ...}` does (`jobs.start_job`: the same
policy checks, limits and `job.create` entry in the ledger) and answer as it does, 201 and the
job, or, with `"stream": true`, with the job's SSE stream itself (`sse.stream_job`).
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..errors import NotFound, ValidationFailed
from ..models import ChatRequest, DirectRequest, JobSpec
from ..templates import CHAT, CHAT_PARAM, words_to_args
from .http import json_response, parse_body, query_b64
from .jobs import start_job
from .sse import stream_job
from .state import STATE

__all__ = ["CHAT_HINT", "read_chat", "read_direct", "routes"]

routes = web.RouteTableDef()

#: how an operator gives the server a chat template, in the 404 of a server without one
CHAT_HINT = (
    "define one in the config file (--config), e.g.\n"
    "[templates.chat]\n"
    'command = ["claude", "-p", "{message}"]\n'
    'params.message = { type = "string", max_length = 100000 }\n'
    "(`{message}` is where the message goes, as one argument; no shell runs it)"
)


Read = Callable[[], Awaitable[tuple[JobSpec, bool]]]


async def _answer(request: web.Request, read: Read) -> web.StreamResponse:
    """Start the job `read` makes of the request (inside its `job.create`, so bad input is in
    the ledger too, as on POST /jobs); answer with it, or with its stream if asked for."""
    query_b64(request)  # a bad `encoding` is refused before a job starts, not after
    stream = False

    async def spec() -> JobSpec:
        nonlocal stream
        made, stream = await read()
        return made

    job = await start_job(request, spec)
    if not stream:
        return json_response(job, 201)
    return await stream_job(request, job.id, headers={"Location": f"/jobs/{job.id}"})


async def read_chat(request: web.Request) -> tuple[JobSpec, bool]:
    """The job `POST /chat`'s body asks for (the `chat` template with its message), and whether
    its stream was asked for."""
    body = await parse_body(request, ChatRequest)
    if CHAT not in request.app[STATE].policy.templates:
        raise NotFound(f"this server has no `{CHAT}` template for POST /chat; {CHAT_HINT}")
    args: dict[str, Any] = {CHAT_PARAM: body.message}
    return JobSpec(template=CHAT, args=args, context=body.context), body.stream


async def read_direct(
    request: web.Request, rewrite: Callable[[str], str] | None = None
) -> tuple[JobSpec, bool]:
    """The job `POST /direct`'s body asks for (a template from a command line, as `rewrite`
    makes it of the body's if given), and whether its stream was asked for."""
    body = await parse_body(request, DirectRequest)
    line = body.command if rewrite is None else rewrite(body.command)
    templates = request.app[STATE].policy.templates
    try:
        words = shlex.split(line)
    except ValueError as e:  # an unclosed quote
        raise ValidationFailed(f"command: cannot split {line[:80]!r}: {e}") from None
    if not words:
        raise ValidationFailed("command: give a template's name, then its arguments")
    if not templates:
        raise NotFound(
            "this server has no templates for POST /direct to run; "
            + CHAT_HINT.replace("[templates.chat]", "[templates.NAME]")
        )
    if len(words) > 1 and words[0].upper() == "EXECUTE" and words[0] not in templates:
        words = words[1:]  # nstar's verb (seed 000): `EXECUTE test --fast` runs `test --fast`
    name, *rest = words
    template = templates.get(name)
    if template is None:
        known = ", ".join(sorted(templates))
        raise ValidationFailed(
            f"command: no template {name[:64]!r} on this server (templates: {known}; "
            "GET /templates describes them)"
        )
    args = words_to_args(name, template, rest)
    return JobSpec(template=name, args=dict(args), context=body.context), body.stream


@routes.post("/chat")
async def chat(request: web.Request) -> web.StreamResponse:
    return await _answer(request, lambda: read_chat(request))


@routes.post("/direct")
async def direct(request: web.Request) -> web.StreamResponse:
    return await _answer(request, lambda: read_direct(request))
