"""The job page's terminal and its connection in a real headless Chromium: the /ws cut mid-job
(the server's sockets closing, the browser going offline) resumes with every line once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ServerProcess, wait_job
from tests.helpers import Proxy, wait_for
from tests.web.test_ui_browser import TERMINAL_TEXT, terminal_text, wait_terminal

expect.set_options(timeout=20_000)

#: terminal.ts's SCROLLBACK: the most lines the terminal keeps above its screen
SCROLLBACK = 10_000

#: records each state the connection indicator shows, however briefly
RECORD_STATES = """() => { window.__states = []; const c = document.querySelector('.conn');
  const note = () => { const s = c.dataset.state; if (window.__states.at(-1) !== s) window.__states.push(s); };
  note(); new MutationObserver(note).observe(c, {attributes: true}); }"""


@pytest.fixture
def relay(server: ServerProcess) -> Iterator[Proxy]:
    """The page reaches the server through this relay, which the test cuts."""
    p = Proxy(server.port)
    yield p
    p.close()


@pytest.fixture
def tall(page: Page) -> Page:
    """Tall enough that the terminal shows 40 lines at once (xterm renders only its rows)."""
    page.set_viewport_size({"width": 1000, "height": 1400})
    return page


def open_through(page: Page, relay: Proxy, server: ServerProcess, route: str = "") -> None:
    page.goto(f"{relay.url}/?token={server.token}{route}")
    expect(page.locator(".conn")).to_have_text("connected")
    page.evaluate(RECORD_STATES)


def cut(page: Page, relay: Proxy, how: str) -> None:
    """The connection gone, until `mend`: the page knows it (it says so)."""
    if how == "server closes":
        before = relay.turned_away
        relay.drop()
        # It tries to come back, again and again (the backoff's first steps are short).
        wait_for(lambda: relay.turned_away >= before + 3, timeout=30)
        expect(page.locator(".conn")).to_have_text("reconnecting")
    else:
        page.context.set_offline(True)
        expect(page.locator(".conn")).to_have_text("offline")
        expect(page.get_by_role("status", name=re.compile(r"Connection: offline"))).to_be_attached()


def mend(page: Page, relay: Proxy, how: str) -> None:
    if how == "server closes":
        relay.restore()
    else:
        page.context.set_offline(False)
    expect(page.locator(".conn")).to_have_text("connected")


@pytest.mark.parametrize("how", ["server closes", "offline"])
def test_a_cut_connection_resumes_the_terminal_with_each_line_once(
    tall: Page, server: ServerProcess, api: httpx.Client, relay: Proxy, tmp_path: Path, how: str
) -> None:
    page, flag = tall, tmp_path / "go"
    script = (
        "for i in $(seq 1 20); do echo line $i; done; "
        f"while [ ! -e {flag} ]; do sleep 0.05; done; "
        "for i in $(seq 21 40); do echo line $i; done"
    )
    job = api.post("/jobs", json={"command": script}).json()
    open_through(page, relay, server, f"#/jobs/{job['id']}")
    wait_terminal(page, "line 20")
    cut(page, relay, how)
    flag.touch()  # the rest of the output, and the job's end, while the page cannot see them
    assert wait_job(api, job["id"])["status"] == "succeeded"
    assert "line 21" not in terminal_text(page)
    mend(page, relay, how)
    wait_terminal(page, "line 40")
    expect(page.locator("h1 .badge")).to_have_text("succeeded")
    lines = [line.rstrip() for line in terminal_text(page).splitlines() if line.strip()]
    assert lines == [f"line {i}" for i in range(1, 41)]  # no gap, no repeat
    states = page.evaluate("window.__states")
    assert states[0] == "connected" and states[-1] == "connected"
    assert ("reconnecting" if how == "server closes" else "offline") in states


def test_the_list_resumes_after_the_server_closed_its_socket(
    page: Page, server: ServerProcess, api: httpx.Client, relay: Proxy, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    a = api.post("/jobs", json={"command": f"while [ ! -e {flag} ]; do sleep 0.05; done"}).json()
    open_through(page, relay, server)
    row = page.locator(f"tr[data-job='{a['id']}']")
    expect(row.locator(".badge")).to_have_text("running")
    cut(page, relay, "server closes")
    flag.touch()
    wait_job(api, a["id"])
    b = api.post("/jobs", json={"command": "exit 4", "name": "while-away"}).json()
    wait_job(api, b["id"])
    mend(page, relay, "server closes")
    expect(row.locator(".badge")).to_have_text("succeeded")
    other = page.locator(f"tr[data-job='{b['id']}']")
    expect(other.locator(".badge")).to_have_text("failed")
    expect(other.locator("td.exit")).to_have_text("exit 4")
    # and it is live again: a job started now shows up by itself
    c = api.post("/jobs", json={"command": "true", "name": "after"}).json()
    expect(page.locator(f"tr[data-job='{c['id']}'] .badge")).to_have_text("succeeded")


def test_an_interactive_job_takes_keys_and_follows_the_window_size(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    script = 'while read l; do echo "answer: $l cols=$(tput cols)"; done'
    job = api.post("/jobs", json={"command": script, "pty": True, "cols": 50}).json()
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{server.url}/?token={server.token}#/jobs/{job['id']}")
    # The page gave the job its own size at once.
    wide = wait_for(lambda: (c := api.get(f"/jobs/{job['id']}").json()["cols"]) != 50 and c)
    page.click(".terminal")
    page.keyboard.type("hello\n")
    wait_terminal(page, f"answer: hello cols={wide}")
    page.set_viewport_size({"width": 700, "height": 800})
    narrow = wait_for(lambda: (c := api.get(f"/jobs/{job['id']}").json()["cols"]) != wide and c)
    assert narrow < wide
    page.keyboard.type("again\n")
    wait_terminal(page, f"answer: again cols={narrow}")
    api.post(f"/jobs/{job['id']}/cancel")


def visible_lines(page: Page) -> list[str]:
    return [line.rstrip() for line in terminal_text(page).splitlines() if line.strip()]


def test_streams_shown_copy_and_the_raw_log(
    tall: Page, server: ServerProcess, api: httpx.Client
) -> None:
    page = tall
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    # A pause between writes: two pipes keep the order of writes a millisecond apart.
    script = "echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2; sleep 0.1; echo err2 >&2"
    job = api.post("/jobs", json={"command": script, "name": "mixed"}).json()
    page.goto(f"{server.url}/?token={server.token}#/jobs/{job['id']}")
    wait_terminal(page, "err2")
    assert visible_lines(page) == ["out1", "err1", "out2", "err2"]
    page.select_option("#term-streams", "stderr")
    expect(page.locator(".xterm-rows")).not_to_contain_text("out1")
    wait_terminal(page, "err2")
    assert visible_lines(page) == ["err1", "err2"]
    page.select_option("#term-streams", "stdout")
    expect(page.locator(".xterm-rows")).not_to_contain_text("err1")
    wait_terminal(page, "out2")
    assert visible_lines(page) == ["out1", "out2"]
    page.select_option("#term-streams", "both")
    wait_terminal(page, "err2")
    assert visible_lines(page) == ["out1", "err1", "out2", "err2"]
    # Copy: all the terminal holds, with no selection
    page.click("#term-copy")
    expect(page.locator(".term-note")).to_have_text("Copied 4 lines.")
    assert page.evaluate("navigator.clipboard.readText()") == "out1\nerr1\nout2\nerr2"
    # or the selection: a double click selects a word
    row = page.locator(".xterm-rows > div", has_text="out2").bounding_box()
    assert row is not None
    page.mouse.dblclick(row["x"] + 10, row["y"] + row["height"] / 2)
    page.click("#term-copy")
    expect(page.locator(".term-note")).to_have_text("Copied 1 line.")
    assert page.evaluate("navigator.clipboard.readText()") == "out2"
    # Download: the raw log, fetched with the token as a header (none in any URL)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    with page.expect_download() as done:
        page.click("#term-download")
    download = done.value
    assert download.suggested_filename == "mixed.log"
    assert Path(download.path()).read_bytes() == api.get(f"/jobs/{job['id']}/log").content
    assert urls and not [u for u in urls if str(server.token) in u]


def test_autoscroll_pauses_while_reading_earlier_lines(
    page: Page, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    script = (
        "for i in $(seq 1 100); do echo early $i; done; "
        f"while [ ! -e {flag} ]; do sleep 0.05; done; for i in $(seq 1 30); do echo late $i; done"
    )
    job = api.post("/jobs", json={"command": script}).json()
    page.goto(f"{server.url}/?token={server.token}#/jobs/{job['id']}")
    wait_terminal(page, "early 100")
    jump = page.locator("#term-jump")
    expect(jump).to_be_hidden()
    page.hover(".terminal")
    page.mouse.wheel(0, -500)  # up, away from the newest lines
    wait_for(lambda: "early 100" not in terminal_text(page), timeout=20)
    seen = terminal_text(page)
    flag.touch()
    expect(jump).to_have_text("30 new lines ↓")
    assert terminal_text(page) == seen  # the view stayed where the user put it
    jump.click()
    wait_terminal(page, "late 30")
    expect(jump).to_be_hidden()


def rows_of(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("row ")]


def test_a_long_output_stays_responsive_and_loads_earlier_output(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    n = 200_000
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    job = api.post("/jobs", json={"command": f"seq 1 {n} | sed 's/^/row /'"}).json()
    page.goto(f"{server.url}/?token={server.token}#/jobs/{job['id']}")
    wait_terminal(page, "row ")
    # While the lines pour in, the page answers a click.
    page.click("#term-copy")
    expect(page.locator(".term-note")).to_contain_text("Copied")
    page.wait_for_function(f"n => ({TERMINAL_TEXT}).includes(n)", arg=f"row {n}\n", timeout=120_000)
    # The terminal holds at most its scrollback (and its screen): the newest lines, in order.
    page.click("#term-copy")
    expect(page.locator(".term-note")).to_have_text(re.compile(r"Copied 1\d{4} lines"))
    raw = page.evaluate("navigator.clipboard.readText()")
    held = rows_of(raw)
    assert held[-1] == n and held == list(range(held[0], n + 1))
    assert len(held) <= SCROLLBACK + 100
    # Earlier output, a page at a time, from the log's byte ranges: it joins the terminal's.
    page.click("#term-earlier")
    earlier = page.locator(".earlier-text")
    expect(earlier).to_contain_text("row ")
    first = rows_of(earlier.text_content() or "")
    assert first == list(range(first[0], first[-1] + 1)) and first[0] > 1
    assert held[0] <= first[-1] + 1 <= n
    page.click("#term-earlier")
    expect(earlier).to_contain_text(f"row {first[0] - 1}\n")
    both = rows_of(earlier.text_content() or "")
    assert both == list(range(both[0], first[-1] + 1)) and both[0] < first[0]


def test_earlier_output_still_joins_the_terminal_as_more_comes(
    page: Page, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    script = (
        "seq 1 20000 | sed 's/^/row /'; "
        f"while [ ! -e {flag} ]; do sleep 0.05; done; seq 20001 40000 | sed 's/^/row /'"
    )
    job = api.post("/jobs", json={"command": script}).json()
    page.goto(f"{server.url}/?token={server.token}#/jobs/{job['id']}")
    wait_terminal(page, "row 20000\n")
    page.click("#term-earlier")
    earlier = page.locator(".earlier-text")
    expect(earlier).to_contain_text("row ")
    before = rows_of(earlier.text_content() or "")
    # The terminal lets go of more lines than it held past where earlier output ended.
    flag.touch()
    page.wait_for_function(f"n => ({TERMINAL_TEXT}).includes(n)", arg="row 40000\n")
    page.click("#term-copy")
    expect(page.locator(".term-note")).to_have_text(re.compile(r"Copied 1\d{4} lines"))
    held = rows_of(page.evaluate("navigator.clipboard.readText()"))
    assert held[0] > before[-1] + 1  # without more, there would be a gap
    expect(earlier).to_contain_text(f"row {held[0] - 1}\n")
    after = rows_of(earlier.text_content() or "")
    assert after[0] == before[0] and after == list(range(after[0], after[-1] + 1))
    assert held[0] <= after[-1] + 1


def test_keys_typed_while_reconnecting_reach_the_job_once_it_is_back(
    page: Page, server: ServerProcess, api: httpx.Client, relay: Proxy
) -> None:
    job = api.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
    open_through(page, relay, server, f"#/jobs/{job['id']}")
    page.click(".terminal")
    page.keyboard.type("before\n")
    wait_terminal(page, "before")
    cut(page, relay, "server closes")
    page.keyboard.type("while away\n")
    assert api.get(f"/jobs/{job['id']}/log").text == "before\n"
    mend(page, relay, "server closes")
    wait_terminal(page, "while away")
    assert api.get(f"/jobs/{job['id']}/log").text == "before\nwhile away\n"
    assert visible_lines(page) == ["before", "while away"]
    api.post(f"/jobs/{job['id']}/cancel")
