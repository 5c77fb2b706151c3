"""What the SSE profiles share: ISO 8601 times, frames, and the answer to a finished resume."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from ...models import Event

__all__ = ["cached", "iso", "message"]


def iso(ts: float) -> str:
    """A Unix time as JavaScript's `toISOString()` writes it: `2026-12-04T19:11:38.123Z`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(data: Any, *, event: str | None = None, ident: int | None = None) -> bytes:
    """One SSE message; orjson never writes a newline, so the JSON fits one `data:` line."""
    head = b"" if ident is None else b"id: %d\n" % ident
    if event is not None:
        head += b"event: %s\n" % event.encode()
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def cached(ev: Event, key: str, encode: Any) -> bytes:
    """`encode(ev)`, built once for every client of the profile (cached on the event)."""
    out = ev.cache.get(key)
    if out is None:
        out = ev.remember(key, encode(ev))
    return out
