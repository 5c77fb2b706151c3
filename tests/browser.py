"""The browser tests drive: Debian's chromium through Playwright's sync API.

A package's conftest imports `browser` and `page` to use them (tests/web, tests/api/compat).
`browser` lives for that package only, not the session: while Playwright's sync API is open,
its event loop counts as running in this thread, and every asyncio test after it would fail
("Cannot run the event loop while another loop is running"). So a package that imports them
holds sync tests only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

#: Debian's chromium, which scripts/tools.sh installs: Playwright never downloads a browser here
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium, one for all the tests of the package; each test gets its own context (`page`)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `bash scripts/tools.sh` installs it")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own storage); the test fails if the page threw or broke its CSP."""
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    problems: list[str] = []
    tab.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    tab.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if m.type == "error" and "Content Security Policy" in m.text
            else None
        ),
    )
    yield tab
    context.close()
    assert not problems, problems
