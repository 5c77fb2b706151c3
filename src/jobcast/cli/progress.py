"""The progress bar `run` and `follow` draw on a terminal, below the job's output.

One line on stderr, drawn with rich's `ProgressBar`: cleared before output is written and drawn
again after it, only where the output left the cursor at the start of a line (a line in progress
is never drawn over). Only on a terminal: in a pipe, nothing of it is written. rich is imported at
the first `progress` event, not before.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

__all__ = ["ProgressLine"]

_CLEAR = "\r\x1b[2K"


class ProgressLine:
    def __init__(self) -> None:
        self._value: dict[str, Any] | None = None
        self._drawn = False
        #: where the job's output left the cursor: at the start of a line, or in one
        self._at_line_start = True

    def update(self, value: dict[str, Any]) -> None:
        """A `progress` event's data: draw it (a `clear` state removes the bar)."""
        self._value = None if value.get("state") == "clear" else value
        if self._value is None:
            self.clear()
        elif self._at_line_start:
            self._draw()

    def before_output(self) -> None:
        self.clear()

    def after_output(self, data: bytes) -> None:
        if data:
            self._at_line_start = data.endswith(b"\n")
        if self._value is not None and self._at_line_start:
            self._draw()

    def clear(self) -> None:
        if self._drawn:
            sys.stderr.write(_CLEAR)
            sys.stderr.flush()
            self._drawn = False

    def _draw(self) -> None:
        assert self._value is not None
        sys.stderr.write(_CLEAR + render(self._value, shutil.get_terminal_size().columns))
        sys.stderr.flush()
        self._drawn = True


def render(value: dict[str, Any], width: int) -> str:
    """The bar as text with its terminal escapes: `━━━━╸     42% 3/10 building wheel`."""
    from io import StringIO

    from rich.console import Console
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    percent = value.get("percent")
    words = []
    if percent is not None:
        words.append(f"{percent:5.1f}%")
    if value.get("current") is not None and value.get("total") is not None:
        unit = f" {value['unit']}" if value.get("unit") else ""
        words.append(f"{value['current']}/{value['total']}{unit}")
    if value.get("state") not in (None, "normal"):
        words.append(str(value["state"]))
    if value.get("message"):
        words.append(str(value["message"]))
    width = max(width - 1, 20)
    bar_width = min(40, width // 2)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=bar_width)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    bar = ProgressBar(
        total=100.0,
        completed=percent or 0.0,
        width=bar_width,
        pulse=percent is None,
        animation_time=0.0,
    )
    grid.add_row(bar, " ".join(words))
    out = StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system="standard")
    console.print(grid, end="")
    return out.getvalue().rstrip("\n")
