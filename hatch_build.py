"""Wheel build hook: the web UI is built (scripts/web.sh) when its files are not there.

They are gitignored, so hatchling would leave them out; `artifacts` in pyproject.toml takes
them in, and this hook makes sure there is something to take, from a clean clone or an sdist.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WebBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return  # an editable install serves src/ itself: `make web` builds it there
        root = Path(self.root)
        if not (root / "src/jobcast/web/static/index.html").is_file():
            subprocess.run(["bash", str(root / "scripts/web.sh")], check=True)
