"""The web UI in a real headless Chromium against a real server: jobs started from the form
stream live into the terminal and end with the right badge; cancel from the page; the token
flow; a template argument refused before it is sent."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ServerProcess, wait_job
from tests.helpers import contrast, png_pixels, wait_for

READ = "tok-viewer-0123456789"
TERMINAL_TEXT = (
    "[...document.querySelectorAll('.xterm-rows > div')].map(d => d.textContent).join('\\n')"
)
# A loaded 2-core machine can take seconds to start a job and render it: deadlines, not delays.
expect.set_options(timeout=20_000)

#: the colour each badge must be, by its dominant channel (CSS: --succeeded, --failed, ...)
RED, GREEN = 0, 1


def terminal_text(page: Page) -> str:
    return str(page.evaluate(TERMINAL_TEXT))


def wait_terminal(page: Page, needle: str) -> None:
    # A function, not an expression: the page's CSP refuses what Playwright would eval.
    page.wait_for_function(f"n => ({TERMINAL_TEXT}).includes(n)", arg=needle, timeout=20_000)


def badge_rgb(page: Page, selector: str) -> tuple[int, int, int]:
    colour = page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor")
    r, g, b = (int(x) for x in re.findall(r"\d+", colour)[:3])
    return r, g, b


def dominant(rgb: tuple[int, int, int]) -> int:
    return max(range(3), key=lambda i: rgb[i])


def sign_in(page: Page, server: ServerProcess, token: str | None = None, route: str = "") -> None:
    page.goto(f"{server.url}/?token={token or server.token}{route}")
    expect(page.locator(".conn")).to_have_text("connected")


def start_from_form(page: Page, command: str) -> str:
    page.click("#nav-new")
    page.fill("#command", command)
    page.click("#start")
    page.wait_for_url(re.compile(r"#/jobs/"))
    return page.url.rsplit("/", 1)[1]


def test_a_job_from_the_form_streams_live_and_ends_succeeded(
    page: Page, server: ServerProcess, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    sign_in(page, server)
    job = start_from_form(
        page, f"echo first; while [ ! -e {flag} ]; do sleep 0.05; done; echo second; echo oops >&2"
    )
    wait_terminal(page, "first")
    # Live: the first line is there while the job still waits for the flag.
    expect(page.locator("h1 .badge")).to_have_text("running")
    assert "second" not in terminal_text(page)
    flag.touch()
    wait_terminal(page, "oops")
    expect(page.locator("h1 .badge")).to_have_text("succeeded")
    assert dominant(badge_rgb(page, "h1 .badge")) == GREEN
    expect(page.locator("dd.exit")).to_have_text("exit 0")
    lines = [line.rstrip() for line in terminal_text(page).splitlines() if line.strip()]
    assert lines == ["first", "second", "oops"]  # each event once, in order
    # stderr in its own colour (bright red, xterm's palette entry 9)
    oops = page.locator(".xterm-rows span", has_text="oops")
    assert "xterm-fg-9" in (oops.first.get_attribute("class") or "")
    first = page.locator(".xterm-rows span", has_text="first")
    assert "xterm-fg-9" not in (first.first.get_attribute("class") or "")
    # search: the match is highlighted
    expect(page.locator(".xterm-decoration-container .xterm-decoration")).to_have_count(0)
    page.fill("#term-search", "second")
    page.press("#term-search", "Enter")
    expect(page.locator(".xterm-decoration-container .xterm-decoration").first).to_be_attached()
    # and in the list, live too
    page.click("text=← Jobs")
    row = page.locator(f"tr[data-job='{job}']")
    expect(row.locator(".badge")).to_have_text("succeeded")
    expect(row.locator("td.exit")).to_have_text("exit 0")


def test_a_link_in_the_output_opens_in_a_new_tab_without_an_opener(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    target = f"{server.url}/status"  # this machine's server: the test reaches nothing else
    job = api.post("/jobs", json={"command": f"echo see {target} for health"}).json()
    sign_in(page, server, route=f"#/jobs/{job['id']}")
    wait_terminal(page, "for health")
    row = page.locator(".xterm-rows > div", has_text="see ")
    box = row.bounding_box()
    assert box is not None
    # Aim at the middle of the URL, after the 4 cells of "see ": xterm measures its cell width
    # on a hidden element of its own.
    char = page.evaluate(
        "() => { const m = document.querySelector('.xterm-char-measure-element');"
        " return m.getBoundingClientRect().width / m.textContent.length; }"
    )
    x = box["x"] + char * (4 + len(target) / 2)
    y = box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    with page.context.expect_page() as opened:
        page.mouse.click(x, y)
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == target
    assert tab.evaluate("window.opener") is None  # noopener: it cannot reach back


def test_a_failing_job_turns_red_with_its_exit_code(page: Page, server: ServerProcess) -> None:
    sign_in(page, server)
    start_from_form(page, "echo about to fail; exit 3")
    wait_terminal(page, "about to fail")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    assert dominant(badge_rgb(page, "h1 .badge")) == RED
    expect(page.locator("dd.exit")).to_have_text("exit 3")


def test_a_finished_jobs_progress_bar_reads_in_dark_mode(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    """The browser's own bar is a pale blue on dark, whatever the job did: the list draws it in
    the colour of the job's badge, with its figure beside it."""
    job = api.post("/jobs", json={"command": "echo '::progress 4/4 done::'"}).json()
    assert wait_job(api, job["id"])["progress"]["percent"] == 100
    page.emulate_media(color_scheme="dark")
    sign_in(page, server)
    cell = page.locator(f"tr[data-job='{job['id']}'] td.progress")
    expect(cell.locator(".pct")).to_have_text("100%")
    rows = png_pixels(cell.locator("progress").screenshot())
    bar = rows[len(rows) // 2][len(rows[0]) // 2]
    background = badge_rgb(page, "body")
    assert dominant(bar) == GREEN, bar  # succeeded's colour, as its badge
    assert contrast(bar, background) >= 3, (bar, background)


def test_the_list_filters_by_status_label_and_search(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    a = api.post("/jobs", json={"command": "true", "name": "alpha", "labels": {"team": "x"}})
    b = api.post("/jobs", json={"command": "exit 1", "name": "beta"})
    for j in (a, b):
        wait_job(api, j.json()["id"])
    sign_in(page, server)
    rows = page.locator("tr[data-job]")
    expect(rows).to_have_count(2)
    assert rows.first.get_attribute("data-job") == b.json()["id"]  # newest first
    page.select_option("#filter-status", "failed")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".name")).to_have_text("beta")
    page.select_option("#filter-status", "")
    page.fill("#filter-label", "team=x")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".name")).to_have_text("alpha")
    page.fill("#filter-label", "")
    page.fill("#filter-search", "exit 1")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".name")).to_have_text("beta")


def test_a_focused_row_keeps_its_focus_while_the_list_updates(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    job = api.post("/jobs", json={"command": "exec sleep 600", "name": "napper"}).json()
    sign_in(page, server)
    link = page.locator(f"tr[data-job='{job['id']}'] .name a")
    link.focus()
    expect(page.locator(f"tr[data-job='{job['id']}'] td.time")).to_have_text(re.compile(r"^[1-9]"))
    api.post("/jobs", json={"command": "true"})  # a new row above it
    expect(page.locator("tr[data-job]")).to_have_count(2)
    assert page.evaluate("document.activeElement.textContent") == "napper"
    api.post(f"/jobs/{job['id']}/cancel")
    expect(page.locator(f"tr[data-job='{job['id']}'] .badge")).to_have_text("cancelled")


def test_cancel_from_the_page(page: Page, server: ServerProcess, api: httpx.Client) -> None:
    job = api.post("/jobs", json={"command": "echo sleeping; exec sleep 600"}).json()
    sign_in(page, server, route=f"#/jobs/{job['id']}")
    wait_terminal(page, "sleeping")
    pid = api.get(f"/jobs/{job['id']}").json()["pid"]
    assert Path(f"/proc/{pid}").exists()
    # Every state the button goes through, however briefly.
    page.evaluate(
        """() => { window.__busy = false; const b = document.querySelector('#cancel');
        new MutationObserver(() => { if (b.getAttribute('aria-busy') === 'true'
          && b.textContent.includes('Cancelling')) window.__busy = true; })
          .observe(b, {attributes: true, childList: true, characterData: true, subtree: true}); }"""
    )
    page.click("#cancel")
    expect(page.locator("#cancel-yes")).to_be_visible()  # asks first
    page.click("#cancel-yes")
    expect(page.locator("h1 .badge")).to_have_text("cancelled")
    assert page.evaluate("window.__busy") is True
    expect(page.locator("#cancel")).to_have_count(0)  # nothing left to cancel
    wait_for(lambda: not _alive(pid), timeout=20)


def test_a_signal_from_the_menu_reaches_the_job(
    page: Page, server: ServerProcess, api: httpx.Client
) -> None:
    script = "trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.05; done"
    job = api.post("/jobs", json={"command": script}).json()
    sign_in(page, server, route=f"#/jobs/{job['id']}")
    wait_terminal(page, "ready")
    page.select_option("#signal", "USR1")
    page.click("#signal-send")
    wait_terminal(page, "got USR1")
    expect(page.locator("h1 .badge")).to_have_text("running")  # a trapped signal ends nothing
    api.post(f"/jobs/{job['id']}/cancel")


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie not yet reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_printed_url_signs_in_and_the_token_leaves_the_address_bar(
    page: Page, server: ServerProcess
) -> None:
    printed = re.search(r"serving on (http://\S+)", server.output())
    assert printed is not None and "?token=" in printed.group(1)
    page.goto(printed.group(1))
    expect(page.locator(".who")).to_have_text("admin")
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('jobcast.token')") == server.token
    page.reload()  # the tab stays signed in
    expect(page.locator(".who")).to_have_text("admin")
    # Nothing the page did put the token in the server's log (but the line that printed it).
    after = server.output().split(printed.group(1), 1)[1]
    assert "GET /whoami" in after and "GET /ws" in after
    assert str(server.token) not in after


def test_without_a_token_the_page_says_how_to_get_one(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#signin-title")).to_be_visible()
    expect(page.locator("#signin-help")).to_contain_text("jobcast serve")
    page.goto(server.url + "/?token=not-a-token")
    expect(page.locator(".signin .error")).to_contain_text("not valid")
    assert "token" not in page.url
    page.fill("#token", server.token or "")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".who")).to_have_text("admin")


def test_without_auth_no_token_is_asked(
    page: Page, server_factory: type[ServerProcess], data_dir: Path
) -> None:
    server = server_factory(data_dir, env={"JOBCAST_AUTH": "none"}).start()
    page.goto(server.url + "/")
    expect(page.locator(".who")).to_have_text("local")
    expect(page.locator(".conn")).to_have_text("connected")
    start_from_form(page, "echo open house")
    wait_terminal(page, "open house")


@pytest.fixture
def viewer_server(server_factory: type[ServerProcess], data_dir: Path) -> ServerProcess:
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(f'[[tokens]]\nname = "viewer"\ntoken = "{READ}"\nscopes = ["read"]\n')
    return server_factory(data_dir, extra=["--config", str(cfg)]).start()


def test_a_read_only_token_sees_no_cancel_and_cannot_type(
    page: Page, viewer_server: ServerProcess
) -> None:
    server = viewer_server
    with httpx.Client(base_url=server.url, headers=server.headers) as admin:
        job = admin.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
        # A token that may drive it types into the terminal, and cat answers.
        sign_in(page, server, route=f"#/jobs/{job['id']}")
        expect(page.locator("#cancel")).to_be_visible()
        page.click(".terminal")
        page.keyboard.type("typed by admin\n")
        wait_terminal(page, "typed by admin")
        # The viewer: no cancel, no signals, a read-only badge, and its keys go nowhere.
        page.evaluate("sessionStorage.clear()")
        sign_in(page, server, READ, route=f"#/jobs/{job['id']}")
        wait_terminal(page, "typed by admin")
        expect(page.locator(".readonly")).to_have_text("read-only")
        expect(page.locator("#cancel")).to_have_count(0)
        expect(page.locator("#signal")).to_have_count(0)
        expect(page.locator("#nav-new")).to_have_count(0)
        page.click(".terminal")
        page.keyboard.type("typed by viewer\n")
        admin.post(f"/jobs/{job['id']}/input", json={"data": "marker\n"})
        wait_terminal(page, "marker")
        log = admin.get(f"/jobs/{job['id']}/log").text
        assert log == "typed by admin\nmarker\n"
        admin.post(f"/jobs/{job['id']}/cancel")


def test_a_template_argument_off_its_pattern_is_refused_before_submitting(
    page: Page, server_factory: type[ServerProcess], data_dir: Path
) -> None:
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(
        '[policy]\nmode = "safe"\n'
        '[templates.greet]\ncommand = ["echo", "hello", "{who}"]\n'
        'params.who = { type = "string", pattern = "[a-z]+", description = "lower-case" }\n'
    )
    server = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    sign_in(page, server)
    page.click("#nav-new")
    # Safe mode: no raw command is offered, the template is.
    expect(page.locator("#job-kind option")).to_have_count(1)
    page.fill("#param-who", "Bob Tables")
    error = page.locator("#param-who-error")
    expect(error).to_contain_text("must match the pattern [a-z]+")
    page.click("#start")
    expect(error).to_be_visible()
    assert page.url.endswith("#/new")
    assert httpx.get(server.url + "/jobs", headers=server.headers).json()["jobs"] == []
    page.fill("#param-who", "bob")
    expect(error).to_be_empty()
    page.click("#start")
    page.wait_for_url(re.compile(r"#/jobs/"))
    wait_terminal(page, "hello bob")


@pytest.mark.parametrize("how", ["from the list", "by its address"])
def test_a_job_opened_mid_run_shows_each_line_once(
    browser_page_tall: Page, server: ServerProcess, api: httpx.Client, tmp_path: Path, how: str
) -> None:
    """From the list, which follows the job from its start, the job page replays it from seq 0
    on the same connection; by its address, the page's subscription and the list's "*" cross.
    Either way the terminal has every line once, in order."""
    page, flag = browser_page_tall, tmp_path / "go"
    script = (
        "for i in $(seq 1 20); do echo line $i; done; "
        f"while [ ! -e {flag} ]; do sleep 0.05; done; "
        "for i in $(seq 21 40); do echo line $i; done"
    )
    if how == "from the list":
        sign_in(page, server)
    job = api.post("/jobs", json={"command": script}).json()
    wait_for(lambda: "line 20" in api.get(f"/jobs/{job['id']}/log").text)
    if how == "from the list":
        row = page.locator(f"tr[data-job='{job['id']}']")
        expect(row.locator(".badge")).to_have_text("running")
        row.locator(".name a").click()
    else:
        sign_in(page, server, route=f"#/jobs/{job['id']}")
    wait_terminal(page, "line 20")
    flag.touch()
    expect(page.locator("h1 .badge")).to_have_text("succeeded")
    wait_terminal(page, "line 40")
    lines = [line.rstrip() for line in terminal_text(page).splitlines() if line.strip()]
    assert lines == [f"line {i}" for i in range(1, 41)]


@pytest.fixture
def browser_page_tall(page: Page) -> Page:
    """Tall enough that the terminal shows 40 lines at once (xterm renders only its rows)."""
    page.set_viewport_size({"width": 1000, "height": 1400})
    return page
