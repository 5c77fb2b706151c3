"""The Python clients of a jobcast server: `Client` (blocking) and `AsyncClient` (asyncio).

    with Client() as client:                  # JOBCAST_URL, else http://127.0.0.1:8080
        job = client.run("make test")
        for event in client.events(job.id):   # reconnects and resumes: no gap, no repeat
            if event.raw is not None:
                print(event.raw.decode(errors="replace"), end="")

Both speak only through `jobcast.models`, `jobcast.protocol` and `jobcast.errors`, so importing them
loads neither the server (aiohttp) nor its storage (sqlite3).
"""

from __future__ import annotations

from .asyncio import AsyncClient, AsyncJobSocket
from .base import ServerStats, ServerStatus
from .stream import backoff, is_retryable
from .sync import Client, JobSocket

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
