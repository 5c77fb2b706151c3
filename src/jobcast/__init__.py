"""jobcast: run commands in the background and stream their output live and durably.

The public API is what `__all__` names: the clients, the data they return, and every error they
raise. Importing it loads only the errors: the data (pydantic) and the clients (httpx,
websockets) are imported when first used, so `import jobcast` and the command line stay quick,
and neither loads the server (aiohttp) nor its storage (sqlite3).
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidJSON,
    JobcastError,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    MissingScope,
    NameTaken,
    NoStdin,
    NotFound,
    PasteNotFound,
    PayloadTooLarge,
    PolicyDenied,
    RangeNotSatisfiable,
    ServerShuttingDown,
    SourceReadOnly,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from .client import AsyncClient, Client
    from .models import Event, EventType, Job, JobList, JobSpec, JobStatus, Paste, TraceEntry

#: the names `__getattr__` imports on first use, and from where
_LAZY = {
    "AsyncClient": "client",
    "Client": "client",
    "Event": "models",
    "EventType": "models",
    "Job": "models",
    "JobList": "models",
    "JobSpec": "models",
    "JobStatus": "models",
    "Paste": "models",
    "TraceEntry": "models",
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'jobcast' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{where}", __name__), name)
    globals()[name] = value  # once is enough: the next lookup finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "EventType",
    "Forbidden",
    "InvalidJSON",
    "Job",
    "JobFinished",
    "JobList",
    "JobNotFinished",
    "JobNotFound",
    "JobSpec",
    "JobStatus",
    "JobcastError",
    "MissingScope",
    "NameTaken",
    "NoStdin",
    "NotFound",
    "Paste",
    "PasteNotFound",
    "PayloadTooLarge",
    "PolicyDenied",
    "RangeNotSatisfiable",
    "ServerShuttingDown",
    "SourceReadOnly",
    "TooManyRequests",
    "TraceEntry",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "__version__",
]
