"""Jobs, job specs and events: the data every layer shares. Pure data, no I/O."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FINAL_STATUSES",
    "LIFECYCLE_EVENTS",
    "OUTPUT_EVENTS",
    "TRANSITIONS",
    "Event",
    "EventType",
    "Job",
    "JobList",
    "JobSpec",
    "JobStatus",
    "InputRequest",
    "ResizeRequest",
    "SignalRequest",
    "can_transition",
    "complete_data",
    "new_job_id",
]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class JobStatus(StrEnum):
    #: accepted, waiting for a free slot (max_running_jobs)
    QUEUED = "queued"
    #: the process has been spawned
    RUNNING = "running"
    #: exited with code 0
    SUCCEEDED = "succeeded"
    #: exited non-zero, died of a signal nobody sent it, or could not start
    FAILED = "failed"
    #: ended by a cancel request or by the server's shutdown
    CANCELLED = "cancelled"
    #: ended because it ran past its timeout
    TIMED_OUT = "timed_out"
    #: its process was lost (the server died while it ran)
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.TIMED_OUT,
        JobStatus.LOST,
    }
)

#: The only changes of status there are; a finished job never changes again.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.LOST}
    ),
    JobStatus.RUNNING: FINAL_STATUSES,
    **{s: frozenset() for s in FINAL_STATUSES},
}


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    return new in TRANSITIONS[old]


class EventType(StrEnum):
    STATUS = "status"
    COMMAND = "command"
    STDOUT = "stdout"
    STDERR = "stderr"
    EXTRACTION = "extraction"
    INPUT = "input"
    RESIZE = "resize"
    COMPLETE = "complete"
    ERROR = "error"


OUTPUT_EVENTS = frozenset({EventType.STDOUT, EventType.STDERR})
#: What the firehose carries without `?output=1`.
LIFECYCLE_EVENTS = frozenset(
    {EventType.STATUS, EventType.COMMAND, EventType.COMPLETE, EventType.ERROR}
)


class JobSpec(BaseModel):
    """What a client asks for in `POST /jobs`: exactly one of `command` (a shell string) or `argv`."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(None, description="A shell command line, run by /bin/sh -c.")
    argv: list[str] | None = Field(
        None, min_length=1, description="Program and arguments, no shell."
    )
    cwd: str | None = Field(None, description="Working directory; the server's own if unset.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Added to the server's environment."
    )
    pty: bool = Field(False, description="Run in a pseudo-terminal (stdout and stderr merge).")
    cols: int = Field(80, ge=1, le=1000)
    rows: int = Field(24, ge=1, le=1000)
    stdin: bool = Field(False, description="Keep stdin open for POST /jobs/{id}/input.")
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the job is ended timed_out."
    )
    name: str | None = Field(None, pattern=NAME_PATTERN, description="Unique among active jobs.")
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_command(self) -> JobSpec:
        if (self.command is None) == (self.argv is None):
            raise ValueError("give exactly one of `command` (a shell string) or `argv` (a list)")
        if self.command is not None and not self.command.strip():
            raise ValueError("`command` is empty")
        return self

    def resolved_argv(self) -> list[str]:
        return (
            ["/bin/sh", "-c", self.command] if self.command is not None else list(self.argv or [])
        )


class Job(BaseModel):
    """A job as the API shows it. Times are Unix epoch seconds."""

    id: str
    name: str | None = None
    status: JobStatus
    command: str | None = None
    argv: list[str]
    cwd: str | None = None
    pty: bool = False
    stdin: bool = False
    timeout: float | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: str | None = Field(
        None, description="Name of the signal that ended the process, if any."
    )
    pid: int | None = None
    reason: str | None = Field(
        None, description="Why the job ended as it did, when it is not obvious."
    )
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    dropped_bytes: int = Field(0, description="Output dropped past max_output_bytes.")
    last_seq: int = 0

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or self.started_at) - self.started_at


def complete_data(job: Job) -> dict[str, Any]:
    """The `complete` event's data: how the job ended, and how much it wrote."""
    return {
        "status": job.status.value,
        "exit_code": job.exit_code,
        "signal": job.signal,
        "duration": job.duration,
        "reason": job.reason,
        "stdout_bytes": job.stdout_bytes,
        "stderr_bytes": job.stderr_bytes,
        "dropped_bytes": job.dropped_bytes,
    }


class JobList(BaseModel):
    jobs: list[Job]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next (older) page.")


@dataclass(slots=True, eq=False)
class Event:
    """One entry of a job's event log. `raw` holds the bytes of an output event.

    The encoded forms are cached on the event (see `protocol`), so each is built once for all clients.
    """

    seq: int
    job: str
    type: EventType
    ts: float
    data: dict[str, Any]
    raw: bytes | None = None
    #: position in the store's global order (the firehose cursor)
    gid: int = 0
    cache: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.raw) if self.raw is not None else 64


class InputRequest(BaseModel):
    """`POST /jobs/{id}/input`: text in `data`, or bytes in `b64`; `eof` closes stdin afterwards."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = None
    b64: str | None = None
    eof: bool = False


class SignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: str | int = Field(..., description='A name ("INT", "SIGTERM") or a number.')


class ResizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cols: int = Field(..., ge=1, le=1000)
    rows: int = Field(..., ge=1, le=1000)


_B32 = "0123456789abcdefghjkmnpqrstvwxyz"
_last_id_ms = 0


def new_job_id() -> str:
    """14 characters, URL-safe, sorting by creation: 10 of milliseconds, 4 random (Crockford base32)."""
    global _last_id_ms
    ms = max(int(time.time() * 1000), _last_id_ms + 1)
    _last_id_ms = ms
    head = "".join(_B32[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
    return head + "".join(secrets.choice(_B32) for _ in range(4))
