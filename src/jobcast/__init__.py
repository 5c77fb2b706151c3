"""jobcast: run commands in the background and stream their output live and durably.

The public API is what `__all__` names: the clients, the data they return, and the errors they
raise. Importing it loads neither the server (aiohttp) nor its storage (sqlite3).
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    JobcastError,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    NoStdin,
    NotFound,
    PasteNotFound,
    PayloadTooLarge,
)
from .models import Event, EventType, Job, JobList, JobSpec, JobStatus, Paste, TraceEntry

if TYPE_CHECKING:
    from .client import AsyncClient, Client


def __getattr__(name: str) -> Any:
    # The clients pull in httpx and websockets; the server, which imports this package too,
    # starts faster without them.
    if name in ("Client", "AsyncClient"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'jobcast' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "EventType",
    "Job",
    "JobFinished",
    "JobList",
    "JobNotFinished",
    "JobNotFound",
    "JobSpec",
    "JobStatus",
    "JobcastError",
    "NoStdin",
    "NotFound",
    "Paste",
    "PasteNotFound",
    "PayloadTooLarge",
    "TraceEntry",
    "__version__",
]
