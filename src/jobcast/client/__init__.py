"""The Python clients of a jobcast server: `Client` (blocking) and `AsyncClient` (asyncio).

    with Client() as client:                  # JOBCAST_URL, else http://127.0.0.1:8080
        job = client.run("make test")
        for event in client.events(job.id):   # reconnects and resumes: no gap, no repeat
            if event.raw is not None:
                print(event.raw.decode(errors="replace"), end="")

Both speak only through `jobcast.models`, `jobcast.protocol` and `jobcast.errors`, so importing them
loads neither the server (aiohttp) nor its storage (sqlite3). The names here are imported on first
use: `jobcast.client.plain`, the command line's light client, is reached without httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asyncio import AsyncClient, AsyncJobSocket
    from .base import ServerStats, ServerStatus
    from .stream import backoff, is_retryable
    from .sync import Client, JobSocket

_LAZY = {
    "AsyncClient": "asyncio",
    "AsyncJobSocket": "asyncio",
    "Client": "sync",
    "JobSocket": "sync",
    "ServerStats": "base",
    "ServerStatus": "base",
    "backoff": "stream",
    "is_retryable": "stream",
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'jobcast.client' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AsyncClient",
    "AsyncJobSocket",
    "Client",
    "JobSocket",
    "ServerStats",
    "ServerStatus",
    "backoff",
    "is_retryable",
]
