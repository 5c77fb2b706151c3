"""POST /pastes and GET /pastes/{hash}: content-addressed context for jobs (`ctx://paste/<sha256>`)."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from pydantic import ValidationError

from ..errors import BadRequest, InvalidJSON, PasteNotFound, PayloadTooLarge, ValidationFailed
from ..models import PasteRequest
from ..pastes import parse_hash, ref_of
from .http import describe, json_response
from .ledger import traced
from .state import STATE

__all__ = ["routes", "store_paste"]

routes = web.RouteTableDef()

#: room for a JSON body's own syntax and escapes beyond the paste it carries
_JSON_SLACK = 64 * 1024


async def _read_capped(request: web.Request, cap: int, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to pass `cap`: by its Content-Length
    before a byte is read, else once that much has arrived (never the whole of it)."""
    too_large = PayloadTooLarge(
        f"a paste may be {limit} bytes at most (setting max_paste_bytes); store it in parts, "
        "or raise the setting"
    )
    if request.content_length is not None and request.content_length > cap:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def store_paste(request: web.Request) -> tuple[str, int]:
    """Store the request's paste (`{"text"}` or the content itself), traced `paste.create`;
    its digest and size."""
    state = request.app[STATE]
    limit = state.settings.max_paste_bytes
    async with traced(request, "paste.create") as op:
        if request.content_type == "application/json":
            # A JSON string may take up to six bytes per byte of text (\u escapes); twice the
            # limit covers ordinary text, and the text itself is held to the limit below.
            body = await _read_capped(request, 2 * limit + _JSON_SLACK, limit)
            data = _text_of(body).encode()
            if len(data) > limit:
                raise PayloadTooLarge(
                    f"a paste may be {limit} bytes at most (setting max_paste_bytes), "
                    f"this one is {len(data)}"
                )
        else:
            data = await _read_capped(request, limit, limit)
        if not data:
            raise BadRequest('the paste is empty; send {"text": "..."} or the content itself')
        digest, new = await asyncio.to_thread(state.pastes.put, data)
        op.detail.update(ref=ref_of(digest), size=len(data), new=new)
    return digest, len(data)


@routes.post("/pastes")
async def create_paste(request: web.Request) -> web.Response:
    digest, size = await store_paste(request)
    return json_response({"ref": ref_of(digest), "size": size}, 201)


def _text_of(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidJSON(f"the request body is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidJSON('the request body must be a JSON object: {"text": "..."}')
    try:
        return PasteRequest.model_validate(obj).text
    except ValidationError as e:
        raise ValidationFailed(describe(e)) from None


@routes.get("/pastes/{hash}")
async def get_paste(request: web.Request) -> web.Response:
    try:
        digest = parse_hash(request.match_info["hash"])
    except ValueError as e:
        raise BadRequest(str(e)) from None
    try:
        data = await asyncio.to_thread(request.app[STATE].pastes.get, digest)
    except FileNotFoundError:
        raise PasteNotFound(
            f"no paste {ref_of(digest)} on this server; POST /pastes stores one"
        ) from None
    return web.Response(
        body=data,
        content_type="text/plain",
        charset="utf-8",
        # Its name is its content: it never changes. nosniff: a browser never runs it as a page.
        headers={
            "Cache-Control": "max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
