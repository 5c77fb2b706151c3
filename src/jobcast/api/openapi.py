"""/openapi.json, generated from the pydantic models, and /docs, a page that renders it."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from .. import __version__
from ..models import InputRequest, Job, JobList, JobSpec, ResizeRequest, SignalRequest
from .http import json_response

__all__ = ["routes", "spec"]

routes = web.RouteTableDef()

_MODELS: list[type[BaseModel]] = [JobSpec, Job, JobList, InputRequest, SignalRequest, ResizeRequest]
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    *,
    body: str | None = None,
    ok: str | None = None,
    status: str = "200",
    params: list[tuple[str, str, str]] | None = None,
    media: str = "application/json",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "OK", "content": {media: {"schema": _ref(ok) if ok else {}}}},
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        op["parameters"] = [
            {
                "name": n,
                "in": where,
                "required": where == "path",
                "description": d,
                "schema": {"type": "string"},
            }
            for n, where, d in params
        ]
    return op


REF = ("ref", "path", "Job id or name")


def spec() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": _ERROR}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    paths: dict[str, Any] = {
        "/jobs": {
            "post": _op("Start a job", body="JobSpec", ok="Job", status="201"),
            "get": _op(
                "List jobs, newest first",
                ok="JobList",
                params=[
                    ("status", "query", "Only jobs with this status"),
                    ("label", "query", "key=value; repeatable"),
                    ("name", "query", "Only jobs with this name"),
                    ("limit", "query", "Page size (default 50)"),
                    ("cursor", "query", "next_cursor of the previous page"),
                ],
            ),
        },
        "/jobs/{ref}": {
            "get": _op("A job", ok="Job", params=[REF]),
            "delete": _op("Forget a finished job and its output", status="204", params=[REF]),
        },
        "/jobs/{ref}/cancel": {
            "post": _op("SIGTERM the process group, SIGKILL after a grace", ok="Job", params=[REF])
        },
        "/jobs/{ref}/input": {
            "post": _op("Write to stdin or the PTY", body="InputRequest", params=[REF])
        },
        "/jobs/{ref}/signal": {
            "post": _op("Signal the process group", body="SignalRequest", params=[REF])
        },
        "/jobs/{ref}/resize": {
            "post": _op("Set the PTY window size", body="ResizeRequest", params=[REF])
        },
        "/jobs/{ref}/log": {
            "get": _op(
                "Raw output bytes (Range supported)",
                media="application/octet-stream",
                params=[
                    REF,
                    ("stream", "query", "stdout, stderr or all (default)"),
                    ("offset", "query", "Start at this byte"),
                    ("follow", "query", "1: keep the response open like tail -f"),
                ],
            )
        },
        "/jobs/{ref}/events": {
            "get": _op(
                "Server-Sent Events of the job; ends after `complete`",
                media="text/event-stream",
                params=[
                    REF,
                    ("after", "query", "Resume after this seq (or send Last-Event-ID)"),
                    ("encoding", "query", "base64: output events also carry `b64`"),
                ],
            )
        },
        "/jobs/{ref}/ws": {
            "get": _op(
                "WebSocket: events as JSON frames (format=raw: output as binary frames)",
                params=[
                    REF,
                    ("after", "query", "Resume after this seq"),
                    ("format", "query", "json (default) or raw"),
                ],
            )
        },
        "/stream": {
            "get": _op(
                "Firehose of all jobs' lifecycle events (output=1: output too)",
                media="text/event-stream",
                params=[
                    ("output", "query", "1 to include output"),
                    ("after", "query", "Resume after this id"),
                ],
            )
        },
        "/status": {"get": _op("Health, version, job counts")},
        "/stats": {"get": _op("Streaming clients, events and bytes sent")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobcast", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(spec())


DOCS = """<!doctype html><html><head><meta charset="utf-8"><title>jobcast API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{font-family:ui-monospace,monospace}pre{background:#f5f5f5;padding:.5rem;overflow:auto}
.m{display:inline-block;min-width:4.5rem;font-weight:600}</style></head><body>
<h1>jobcast API</h1><p>Errors are <code>{"error": {"code", "message"}}</code>.
The machine-readable description is <a href="/openapi.json">/openapi.json</a>.</p><div id="api"></div>
<script>
fetch("openapi.json").then(r => r.json()).then(s => {
  const root = document.getElementById("api");
  const esc = t => String(t).replace(/[&<>]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]));
  for (const [path, ops] of Object.entries(s.paths)) for (const [m, op] of Object.entries(ops)) {
    const d = document.createElement("details");
    const params = (op.parameters || []).map(p => `<li><code>${esc(p.name)}</code> (${p.in}): ${esc(p.description)}</li>`).join("");
    const body = op.requestBody ? op.requestBody.content["application/json"].schema.$ref.split("/").pop() : "";
    d.innerHTML = `<summary><span class="m">${m.toUpperCase()}</span><code>${esc(path)}</code> ${esc(op.summary)}</summary>`
      + (params ? `<ul>${params}</ul>` : "")
      + (body ? `<p>Body: <code>${body}</code></p><pre>${esc(JSON.stringify(s.components.schemas[body], null, 2))}</pre>` : "");
    root.appendChild(d);
  }
});
</script></body></html>"""


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS, content_type="text/html")
