"""/docs in a real Chromium: Swagger UI, bundled and served by the server itself, renders
/openapi.json without a token, and its "Try it out" of GET /jobs is signed with the tab's token."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, Request, expect

from tests.conftest import ServerProcess

expect.set_options(timeout=20_000)


def test_docs_render_every_operation_without_a_token(page: Page, server: ServerProcess) -> None:
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    page.goto(server.url + "/docs")
    spec = httpx.get(server.url + "/openapi.json").json()
    operations = sum(len(ops) for ops in spec["paths"].values())  # HEADs too
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path[data-path='/jobs/{ref}/events']")).to_be_visible()
    assert outside == []  # no CDN, no validator badge: nothing leaves this server


def test_try_it_out_of_get_jobs_succeeds_with_the_signed_in_token(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    job = api.post("/jobs", json={"command": "true", "name": "listed"}).json()
    page.goto(f"{server.url}/?token={server.token}")
    expect(page.locator(".who")).to_have_text("admin")
    page.goto(server.url + "/docs")  # the same tab: its sessionStorage has the token
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r) if r.url.startswith(server.url + "/jobs") else None)
    op = page.locator(".opblock-get", has=page.locator("[data-path='/jobs']"))
    op.locator(".opblock-summary-control").click()
    op.get_by_role("button", name="Try it out").click()
    op.get_by_role("button", name="Execute").click()
    live = op.locator(".live-responses-table .response .response-col_status")
    expect(live).to_have_text("200")
    expect(
        op.locator(".live-responses-table .response td.response-col_description")
    ).to_contain_text(job["id"])
    assert sent and sent[0].headers.get("authorization") == f"Bearer {server.token}"
    assert "token" not in sent[0].url and "token" not in page.url
