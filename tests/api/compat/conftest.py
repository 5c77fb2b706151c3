"""A server as the seeds' examples expect one (no token asked, templates for nstar's chat and
direct), and the browser for the agents document's JavaScript client. Sync tests only here: the
browser's package scope needs it (tests/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser import browser, page
from tests.conftest import ServerProcess

__all__ = ["browser", "compat", "compat_api", "page"]

CONFIG = """
[templates.chat]
command = ["sh", "-c", "echo chat: $0", "{message}"]
params.message = { type = "string" }

[templates.test]
command = ["sh", "-c", "echo testing $0 $1; echo slow >&2", "{fast}", "{parallel}"]
params.fast = { type = "boolean", default = false }
params.parallel = { type = "boolean", default = false }
"""


@pytest.fixture
def compat(server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path) -> ServerProcess:
    """The old systems asked no token: their examples, run as written, need auth none."""
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(CONFIG)
    extra = ["--auth", "none", "--heartbeat-seconds", "1", "--config", str(cfg)]
    return server_factory(data_dir, extra=extra).start()


@pytest.fixture
def compat_api(compat: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=compat.url, timeout=30) as client:
        yield client
