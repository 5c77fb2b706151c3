"""The job page's panels in a real Chromium against a real server: extractions (latest and
history), the progress bar, the raw events with their counts, the trace (admin only) and the
stats, each live while the job runs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import httpx
import orjson
from playwright.sync_api import Page, expect

from jobcast.protocol import SSEParser
from tests.conftest import ServerProcess, wait_job
from tests.web.test_ui_browser import READ, sign_in, viewer_server  # noqa: F401 (fixture)

expect.set_options(timeout=20_000)


def all_events(api: httpx.Client, job: str) -> list[dict]:
    """Every event of a finished job, from its SSE stream (which ends after `complete`)."""
    parser, out = SSEParser(), []
    with api.stream("GET", f"/jobs/{job}/events") as resp:
        for chunk in resp.iter_raw():
            out += [orjson.loads(m.data) for m in parser.feed(chunk)]
    return out


def test_extractions_progress_and_events_show_live(
    page: Page, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    script = (
        "echo passed 41; echo 50%; "
        f"while [ ! -e {flag} ]; do sleep 0.05; done; "
        "echo passed 42; echo '::progress 3/10 step three::'; echo failed 1 >&2"
    )
    extract = [
        {"name": "passed", "pattern": r"passed (\d+)"},
        {"name": "failed", "pattern": r"failed (\d+)"},
    ]
    job = api.post("/jobs", json={"command": script, "extract": extract}).json()
    sign_in(page, server, route=f"#/jobs/{job['id']}")
    latest = page.locator("#extractions-latest tr")
    expect(latest).to_have_count(1)
    expect(page.locator("#extractions-latest tr[data-name='passed'] .value")).to_have_text("41")
    expect(page.locator("#progress-bar")).to_have_js_property("value", 50)
    expect(page.locator("#progress-text")).to_have_text("50%")
    expect(page.locator("h1 .badge")).to_have_text("running")  # all of it while it runs
    flag.touch()
    expect(page.locator("h1 .badge")).to_have_text("succeeded")
    expect(page.locator("#extractions-latest tr[data-name='passed'] .value")).to_have_text("42")
    expect(page.locator("#extractions-latest tr[data-name='passed'] .count")).to_have_text("2×")
    expect(page.locator("#extractions-latest tr[data-name='failed'] .value")).to_have_text("1")
    history = page.locator("#extractions-history tr td:nth-child(3)")
    expect(history).to_have_text(["1", "42", "41"])  # newest first
    expect(page.locator("#progress-bar")).to_have_js_property("value", 30)
    expect(page.locator("#progress-text")).to_have_text("30% · 3/10 · step three")

    # The raw events: each once, counted by kind as the server has them.
    events = all_events(api, job["id"])
    kinds = Counter(
        "output"
        if e["type"] in ("stdout", "stderr")
        else e["type"]
        if e["type"] == "extraction"
        else "state"
        if e["type"] in ("status", "complete", "command")
        else "other"
        for e in events
    )
    page.click("#tab-events")
    expect(page.locator("#panel-events")).to_be_visible()
    expect(page.locator("#panel-extractions")).to_be_hidden()
    counts = page.locator("#panel-events dd[data-kind='all']")
    expect(counts).to_have_text(str(len(events)))
    for kind in ("output", "extraction", "state", "other"):
        dd = page.locator(f"#panel-events dd[data-kind='{kind}']")
        expect(dd).to_have_text(str(kinds[kind]))
    lines = sum(e["data"]["text"].count("\n") for e in events if e["type"] in ("stdout", "stderr"))
    assert lines == 5
    expect(page.locator("#panel-events dd[data-kind='lines']")).to_have_text("5")
    rows = page.locator("#raw-events li")
    expect(rows).to_have_count(len(events))
    seqs = [int(s) for s in rows.evaluate_all("ls => ls.map(l => l.dataset.seq)")]
    assert seqs == [e["seq"] for e in reversed(events)]
    page.select_option("#events-filter", "extraction")
    expect(page.locator("#raw-events li:visible")).to_have_count(kinds["extraction"])
    expect(page.locator("#raw-events li:visible strong").first).to_have_text("extraction")


def test_the_trace_and_stats_panels(page: Page, server: ServerProcess, api: httpx.Client) -> None:
    job = api.post("/jobs", json={"command": "echo hi", "name": "traced"}).json()
    wait_job(api, job["id"])
    sign_in(page, server, route=f"#/jobs/{job['id']}")
    expect(page.locator("#progress-bar")).to_be_hidden()  # it had none
    page.click("#tab-trace")
    ops = page.locator("#trace-entries td.op")
    expect(ops).to_have_text(["job.finish", "job.start", "job.create"])
    # A job's trace is its own: another's entries stay out, and one added later comes in.
    other = api.post("/jobs", json={"command": "true"}).json()
    wait_job(api, other["id"])
    again = api.post("/jobs", json={"command": "true"}).json()
    wait_job(api, again["id"])
    api.delete(f"/jobs/{job['id']}")
    expect(ops.first).to_have_text("job.delete")
    expect(ops).to_have_count(4)

    page.click("#tab-stats")
    # This page is a client of the server: its /ws counts.
    expect(page.locator("#stats dd[data-stat='clients']")).to_contain_text("mux 1")
    sent = page.locator("#stats dd[data-stat='events']")
    expect(sent).not_to_have_text("")
    assert int(sent.inner_text().split()[0]) > 0


def test_a_token_without_admin_has_no_trace_panel(
    page: Page,
    viewer_server: ServerProcess,  # noqa: F811
) -> None:
    with httpx.Client(base_url=viewer_server.url, headers=viewer_server.headers) as admin:
        job = admin.post("/jobs", json={"command": "echo hi"}).json()
        wait_job(admin, job["id"])
    sign_in(page, viewer_server, READ, route=f"#/jobs/{job['id']}")
    expect(page.locator("#tab-stats")).to_be_visible()
    expect(page.locator("#tab-trace")).to_have_count(0)


def test_the_progress_bar_shows_the_terminal_progress_states(
    page: Page, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    """OSC 9;4 (Windows Terminal's): 2 is an error, 3 indeterminate (no value), 0 clears."""
    flags = [tmp_path / f"go{i}" for i in range(3)]
    wait = "while [ ! -e {} ]; do sleep 0.05; done; "
    script = (
        "printf '\\033]9;4;2;60\\007'; echo failing; "
        + wait.format(flags[0])
        + "printf '\\033]9;4;3;0\\007'; echo thinking; "
        + wait.format(flags[1])
        + "printf '\\033]9;4;0;0\\007'; echo cleared; "
        + wait.format(flags[2])
    )
    job = api.post("/jobs", json={"command": script}).json()
    sign_in(page, server, route=f"#/jobs/{job['id']}")
    panel, bar = page.locator(".progress-panel"), page.locator("#progress-bar")
    expect(panel).to_have_attribute("data-state", "error")
    expect(bar).to_have_js_property("value", 60)
    flags[0].touch()
    expect(panel).to_have_attribute("data-state", "indeterminate")
    expect(bar).not_to_have_attribute("value", re.compile(".*"))  # indeterminate
    flags[1].touch()
    expect(panel).to_be_hidden()
    flags[2].touch()
    expect(page.locator("h1 .badge")).to_have_text("succeeded")
