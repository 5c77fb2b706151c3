"""Screenshots of the job list, a running job and a finished job with extractions, in light and
dark and at a desktop's and a phone's size, for anyone to look at: tests/artifacts/ (ignored by
git). The test holds what each shows before it takes it."""

from __future__ import annotations

import struct
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ServerProcess, wait_job
from tests.web.test_ui_browser import sign_in, wait_terminal

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SIZES = {"desktop": (1280, 860), "phone": (375, 667)}
BUILD = (
    "echo '\\033[1mbuilding\\033[0m jobcast'; for i in 1 2 3 4; do echo step $i of 4; "
    "echo \"::progress $i/4 step $i::\"; done; echo 'warning: 1 deprecated call' >&2; "
    "echo '==== 41 passed, 1 failed in 3.2s ===='; echo 'see https://example.org/report'"
)
EXTRACT = [
    {"name": "passed", "pattern": r"(\d+) passed"},
    {"name": "failed", "pattern": r"(\d+) failed"},
    {"name": "step", "pattern": r"^step (\d+)"},
]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def shoot(page: Page, name: str, size: tuple[int, int], full_page: bool = False) -> None:
    """The viewport, or the whole page (as wide, and at least as tall)."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    width, height = png_size(path)
    assert width == size[0] and (height >= size[1] if full_page else height == size[1])


def test_screenshots(browser: Browser, server: ServerProcess, api: httpx.Client) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    done = api.post(
        "/jobs",
        json={"command": BUILD, "name": "build", "labels": {"team": "infra"}, "extract": EXTRACT},
    ).json()
    wait_job(api, done["id"])
    api.post("/jobs", json={"command": "exit 3", "name": "flaky"})
    running = api.post(
        "/jobs",
        json={
            "command": "echo compiling; echo '::progress 42 linking::'; exec sleep 600",
            "name": "deploy",
            "labels": {"env": "staging"},
        },
    ).json()
    for scheme in ("light", "dark"):
        for size_name, size in SIZES.items():
            context = browser.new_context(
                color_scheme=scheme,  # type: ignore[arg-type]
                viewport={"width": size[0], "height": size[1]},
            )
            page = context.new_page()
            try:
                tag = f"{scheme}-{size_name}"
                sign_in(page, server)
                expect(page.locator("tr[data-job]")).to_have_count(3)
                expect(page.locator(f"tr[data-job='{running['id']}'] .badge")).to_have_text(
                    "running"
                )
                shoot(page, f"list-{tag}", size)
                page.goto(f"{server.url}/#/jobs/{running['id']}")
                wait_terminal(page, "compiling")
                expect(page.locator("#progress-text")).to_have_text("42% · linking")
                shoot(page, f"running-{tag}", size)
                page.goto(f"{server.url}/#/jobs/{done['id']}")
                wait_terminal(page, "41 passed")
                expect(page.locator("#extractions-latest tr")).to_have_count(3)
                shoot(page, f"finished-{tag}", size, full_page=True)
            finally:
                context.close()
    api.post(f"/jobs/{running['id']}/cancel")
