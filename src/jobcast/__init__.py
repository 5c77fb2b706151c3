"""jobcast: run commands in the background and stream their output live and durably."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import JobcastError, JobNotFound
from .models import Event, EventType, Job, JobSpec, JobStatus

__all__ = ["Event", "EventType", "Job", "JobNotFound", "JobSpec", "JobStatus", "JobcastError", "__version__"]
