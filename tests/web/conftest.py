"""The web UI's tests drive Debian's chromium: the fixtures of tests/browser.py, for this
package only (its tests are sync; see there why)."""

from tests.browser import browser, page

__all__ = ["browser", "page"]
