"""jobcast: run commands in the background and stream their output live and durably.

The public API is what `__all__` names: the clients, the data they return, and the errors they
raise. Importing it loads neither the server (aiohttp) nor its storage (sqlite3).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .client import AsyncClient, Client
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
)
from .models import Event, EventType, Job, JobList, JobSpec, JobStatus

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
    "__version__",
]
