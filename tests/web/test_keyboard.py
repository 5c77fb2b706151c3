"""The page by keyboard, for every reader: the shortcuts listed on `?` and working, an
accessible name on every control, light and dark after the system, and a phone's width."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ServerProcess, wait_job
from tests.web.test_ui_browser import sign_in, wait_terminal

expect.set_options(timeout=20_000)


def nameless_controls(page: Page) -> list[str]:
    """The visible controls whose accessible name (as the browser computes it for its
    accessibility tree) is empty."""
    bad = []
    for role in ("button", "textbox", "searchbox", "combobox", "checkbox", "tab", "link"):
        for control in page.get_by_role(role).all():
            snapshot = control.aria_snapshot().splitlines()[0]
            if not re.match(rf'- {role} "[^"]+"', snapshot):
                bad.append(f"{snapshot}: {control.evaluate('e => e.outerHTML')[:200]}")
    return bad


def test_question_mark_lists_the_shortcuts_and_they_work(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    job = api.post("/jobs", json={"command": "echo hello; exec sleep 600", "name": "napper"})
    sign_in(page, server)
    dialog = page.locator("dialog#shortcuts")
    expect(dialog).to_be_hidden()
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Keyboard shortcuts")
    expect(dialog.locator("dt")).to_contain_text(["?", "/", "n", "g then l", "c", "[", "]"])
    assert nameless_controls(page) == []
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.click("#help")  # the same list, by the mouse
    expect(dialog).to_be_visible()
    page.click("#shortcuts-close")
    expect(dialog).to_be_hidden()

    page.keyboard.press("/")
    expect(page.locator("#filter-search")).to_be_focused()
    page.keyboard.type("n/")  # typed into the field, not taken as shortcuts
    expect(page.locator("#filter-search")).to_have_value("n/")
    assert page.url.endswith("#/") or "#" not in page.url
    page.keyboard.press("Escape")
    expect(page.locator("#filter-search")).not_to_be_focused()
    page.fill("#filter-search", "")
    page.keyboard.press("Escape")

    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"#/new$"))
    expect(page.locator("#command")).to_be_visible()
    page.keyboard.press("g")
    page.keyboard.press("l")
    page.wait_for_url(re.compile(r"#/$"))

    page.goto(f"{server.url}/#/jobs/{job.json()['id']}")
    wait_terminal(page, "hello")
    expect(page.locator("#tab-extractions")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("]")
    expect(page.locator("#tab-events")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-events")).to_be_visible()
    page.keyboard.press("[")
    page.keyboard.press("[")
    expect(page.locator("#tab-stats")).to_have_attribute("aria-selected", "true")
    page.focus("#tab-stats")
    page.keyboard.press("ArrowRight")  # the tabs' own keys: round to the first
    expect(page.locator("#tab-extractions")).to_be_focused()
    expect(page.locator("#tab-extractions")).to_have_attribute("aria-selected", "true")
    page.locator("#tab-extractions").blur()
    page.keyboard.press("c")
    expect(page.locator("#cancel-yes")).to_be_visible()  # asks first
    assert nameless_controls(page) == []
    page.keyboard.press("Escape")
    assert api.get(f"/jobs/{job.json()['id']}").json()["status"] == "running"
    api.post(f"/jobs/{job.json()['id']}/cancel")


def test_every_control_of_each_view_has_a_name(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    job = api.post(
        "/jobs", json={"command": "echo hi", "extract": [{"name": "x", "pattern": "h(i)"}]}
    )
    wait_job(api, job.json()["id"])
    sign_in(page, server)
    expect(page.locator("tr[data-job]")).to_have_count(1)
    assert nameless_controls(page) == []
    page.click("#nav-new")
    expect(page.locator("#command")).to_be_visible()
    assert nameless_controls(page) == []
    page.goto(f"{server.url}/#/jobs/{job.json()['id']}")
    expect(page.locator("#extractions-latest tr")).to_have_count(1)
    for tab in ("extractions", "events", "trace", "stats"):
        page.click(f"#tab-{tab}")
        assert nameless_controls(page) == [], tab


@pytest.mark.parametrize(
    ("scheme", "background"), [("light", "255, 255, 255"), ("dark", "15, 17, 21")]
)
def test_light_and_dark_follow_the_system(
    browser: Browser, server: ServerProcess, scheme: str, background: str
) -> None:
    context = browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    try:
        sign_in(page, server)
        colour = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert colour == f"rgb({background})"
    finally:
        context.close()


def test_a_phone_sized_screen_needs_no_sideways_scrolling(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    long = "echo " + "a-rather-long-command-line-argument " * 6
    job = api.post("/jobs", json={"command": long, "name": "phone", "labels": {"team": "mobile"}})
    wait_job(api, job.json()["id"])
    page.set_viewport_size({"width": 375, "height": 667})
    sign_in(page, server)
    expect(page.locator("tr[data-job]")).to_have_count(1)
    width = "() => document.documentElement.scrollWidth"
    assert page.evaluate(width) <= 375
    page.goto(f"{server.url}/#/jobs/{job.json()['id']}")
    wait_terminal(page, "a-rather")
    for tab in ("extractions", "events", "trace", "stats"):
        page.click(f"#tab-{tab}")
        assert page.evaluate(width) <= 375, tab
    page.keyboard.press("?")
    assert page.evaluate(width) <= 375
