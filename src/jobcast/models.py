"""Jobs, job specs and events: the data every layer shares. Pure data, no I/O."""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .extract import Extractor, unique_names

__all__ = [
    "FINAL_STATUSES",
    "LIFECYCLE_EVENTS",
    "OUTPUT_EVENTS",
    "RECORDED_INPUT",
    "TRANSITIONS",
    "Event",
    "EventType",
    "Job",
    "JOB_KINDS",
    "JobKind",
    "JobList",
    "JobSpec",
    "JobStatus",
    "JobWebhook",
    "ChatRequest",
    "DirectRequest",
    "InputRequest",
    "Meter",
    "Paste",
    "PasteRequest",
    "PruneRequest",
    "PruneResult",
    "ResizeRequest",
    "SignalRequest",
    "SourceInfo",
    "TraceEntry",
    "TraceList",
    "can_transition",
    "complete_data",
    "new_job_id",
]

#: the key of an `input` event's data that holds what was typed (base64) in a job started with
#: `record_input`: kept in the log for its recording, never sent on a stream (protocol.event_dict)
RECORDED_INPUT = "recorded"

#: what a job is: a process run (`job`), or a file tailed (`source`, `--watch`)
JobKind = Literal["job", "source"]
JOB_KINDS: tuple[JobKind, ...] = ("job", "source")

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
#: NAME_PATTERN in words, for the people who get a name wrong
NAME_RULE = (
    "a name starts with a letter and has at most 64 characters, each a letter (A-Z, a-z), "
    "a digit, `_`, `.` or `-`"
)
_NAME = re.compile(NAME_PATTERN)

#: Linux's MAX_ARG_STRLEN: the longest single argument or `NAME=value` execve takes, NUL included.
MAX_ARG_STRLEN = 32 * 4096


def _arg_max() -> int:
    try:
        return max(os.sysconf("SC_ARG_MAX"), 65536)
    except (ValueError, OSError):  # pragma: no cover - every Linux has it
        return 2 * 1024 * 1024


#: What execve takes for argv and environment together: strings, their NULs and their pointers.
ARG_MAX = _arg_max()


def _no_nul(value: str) -> str:
    # execve takes C strings: a NUL would cut the argument short, or fail the spawn.
    if "\0" in value:
        raise ValueError("must not contain a NUL byte")
    if len(value.encode(errors="surrogatepass")) + 1 > MAX_ARG_STRLEN:
        raise ValueError(f"is longer than the {MAX_ARG_STRLEN - 1} bytes execve takes")
    return value


def _env_name(value: str) -> str:
    if not value or "=" in value:
        raise ValueError("an environment variable's name must be non-empty and without `=`")
    return _no_nul(value)


def _job_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        # A custom error: its message is shown as is, without pydantic's "Value error, " prefix.
        raise PydanticCustomError(
            "job_name",
            "{name} is not a valid job name: {rule}",
            {"name": repr(value), "rule": NAME_RULE},
        )
    return value


def _paste_ref(value: str) -> str:
    # The same check as pastes.parse_ref, kept here so models stay free of I/O imports.
    prefix = "ctx://paste/"
    digest = value[len(prefix) :]
    if not value.startswith(prefix) or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise ValueError(
            f"{value[:100]!r} is not a paste ref; refs look like ctx://paste/<sha256>, "
            "as POST /pastes answers"
        )
    return value


ExecStr = Annotated[str, AfterValidator(_no_nul)]
# The schema keeps the pattern for machines; the error says the rule in words.
JobName = Annotated[
    str, AfterValidator(_job_name), Field(json_schema_extra={"pattern": NAME_PATTERN})
]
EnvName = Annotated[str, AfterValidator(_env_name)]


def _exec_cost(strings: list[str]) -> int:
    """Bytes of execve's argument space these strings take: each, its NUL and its pointer."""
    return sum(len(s.encode(errors="surrogatepass")) + 1 + 8 for s in strings)


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
    PROGRESS = "progress"
    INPUT = "input"
    RESIZE = "resize"
    COMPLETE = "complete"
    ERROR = "error"


OUTPUT_EVENTS = frozenset({EventType.STDOUT, EventType.STDERR})
#: What the firehose carries without `?output=1`.
LIFECYCLE_EVENTS = frozenset(
    {EventType.STATUS, EventType.COMMAND, EventType.COMPLETE, EventType.ERROR}
)


def webhook_url(value: str) -> str:
    """A URL a webhook may be posted to: http or https, a host, no user or password in it (a
    credential there would end up in logs and the trace)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password; sign with `secret` instead")
    try:
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError as e:
        raise ValueError(f"has a bad port: {e}") from None
    return value


WebhookURL = Annotated[str, Field(max_length=2048), AfterValidator(webhook_url)]


class JobWebhook(BaseModel):
    """Where a job's end is posted (the server's `webhook_allow` must admit the URL)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: WebhookURL = Field(description='Posted `{"event": "job.finished", "job"}`.')
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Signs each delivery (`X-Jobcast-Signature`); unsigned without it.",
    )


def _webhook_shorthand(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


class JobSpec(BaseModel):
    """What a client asks for in `POST /jobs`: exactly one of `command` (a shell string) or `argv`."""

    # Strict: `"pty": "yes"` or `"cols": "80"` is a client's mistake to hear about, not to guess at.
    model_config = ConfigDict(extra="forbid", strict=True)

    command: ExecStr | None = Field(None, description="A shell command line, run by /bin/sh -c.")
    argv: list[ExecStr] | None = Field(
        None, min_length=1, description="Program and arguments, no shell."
    )
    template: str | None = Field(
        None,
        max_length=64,
        description="Run this template (GET /templates) instead of `command` or `argv`; the "
        "template sets the argv, `cwd`, `env` and `pty`.",
    )
    args: dict[str, StrictStr | StrictInt | bool] = Field(
        default_factory=dict,
        description="The template's arguments, by parameter name; each goes into the argv "
        "elements it is written in, never through a shell.",
    )
    cwd: ExecStr | None = Field(None, description="Working directory; the server's own if unset.")
    env: dict[EnvName, ExecStr] = Field(
        default_factory=dict, description="Added to the server's environment."
    )
    inherit_env: bool = Field(
        True,
        description="false: the job's environment is `env` alone, not added to the server's "
        "(what `jobcast run --env-from-here` sends).",
    )
    stderr: Literal["pipe", "merge"] = Field(
        "pipe",
        description='"pipe": stderr is its own stream, in order with stdout as the server read '
        'them; "merge": stderr goes into stdout\'s pipe, in the exact order of the writes, as '
        "`stdout` events (as `2>&1`).",
    )
    pty: bool = Field(False, description="Run in a pseudo-terminal (stdout and stderr merge).")
    cols: int = Field(80, ge=1, le=1000)
    rows: int = Field(24, ge=1, le=1000)
    shared: Literal["control", "view"] = Field(
        "control",
        description="Who may drive the job (input, interrupt, resize, signal, cancel): "
        '"control", any token with the `control` scope; "view", only the token that created '
        "it (with `control`) or an admin; everyone else with `read` watches.",
    )
    stdin: bool = Field(False, description="Keep stdin open for POST /jobs/{id}/input.")
    record_input: bool = Field(
        False,
        description="Keep what is typed into it (its input, an interrupt as \\x03) in its log, "
        "for the `i` events of its recording (GET /jobs/{id}/asciicast), which only a token "
        "that may drive the job gets; live streams carry an input's length only, as ever. "
        "Needs `stdin` or `pty` (or a template).",
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the job is ended timed_out."
    )
    max_output_bytes: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Output kept (stdout and stderr together); the server's setting if unset.",
    )
    name: JobName | None = Field(None, description="Unique among active jobs.")
    labels: dict[str, str] = Field(default_factory=dict)
    context: list[Annotated[str, AfterValidator(_paste_ref)]] = Field(
        default_factory=list,
        max_length=64,
        description="Paste refs (ctx://paste/<sha256>); the job gets their files' paths, "
        "`:`-separated, in JOBCAST_CONTEXT.",
    )
    context_stdin: bool = Field(
        False, description="The first context file is the job's stdin (not with stdin or pty)."
    )
    extract: Annotated[list[Extractor], AfterValidator(unique_names)] = Field(
        default_factory=list,
        max_length=64,
        description="Named RE2 patterns run over each complete line of output; each match is "
        "an `extraction` event, and the job keeps each name's last value (`extracted`).",
    )
    webhook: Annotated[
        JobWebhook | None,
        BeforeValidator(_webhook_shorthand, json_schema_input_type=str | JobWebhook | None),
    ] = Field(
        None,
        description="Post the job's end here: a URL, or `{url, secret}`; only to URLs the "
        "server's `webhook_allow` admits.",
    )

    @model_validator(mode="after")
    def _one_command(self) -> JobSpec:
        if self.context_stdin and (not self.context or self.stdin or self.pty):
            raise ValueError(
                "`context_stdin` needs a `context` ref, and neither `stdin` nor `pty` "
                "(the job's stdin is then the first context file)"
            )
        given = [k for k in ("command", "argv", "template") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `command` (a shell string), `argv` (a list) or `template` "
                "(a name, with `args`)"
            )
        if self.template is None and self.args:
            raise ValueError("`args` are a template's: give `template` too")
        if self.record_input and not (self.stdin or self.pty or self.template is not None):
            raise ValueError(
                "`record_input` records what is typed into the job: give `stdin` or `pty` too"
            )
        if self.template is not None:
            # The operator's template decides these; a caller who sets them means something else.
            fixed = [
                k
                for k, default in (
                    ("cwd", None),
                    ("env", {}),
                    ("inherit_env", True),
                    ("pty", False),
                )
                if getattr(self, k) != default
            ]
            if fixed:
                raise ValueError(
                    f"with `template`, the template sets {', '.join(f'`{k}`' for k in fixed)}"
                    "; leave it out"
                )
        if self.command is not None and not self.command.strip():
            raise ValueError("`command` is empty")
        # Refused here, not by a spawn that can never succeed: execve's total for argv and
        # environment (the server's own environment is inherited too, so it counts).
        env = {**os.environ, **self.env} if self.inherit_env else self.env
        cost = _exec_cost(self.resolved_argv()) + _exec_cost([f"{k}={v}" for k, v in env.items()])
        if cost > ARG_MAX:
            raise ValueError(
                f"`argv`/`command` and `env` together take {cost} bytes, more than the"
                f" {ARG_MAX} execve accepts (ARG_MAX); pass large input on stdin or in a file"
            )
        return self

    def resolved_argv(self) -> list[str]:
        return (
            ["/bin/sh", "-c", self.command] if self.command is not None else list(self.argv or [])
        )


class SourceInfo(BaseModel):
    """What a source (a file jobcast tails, not a process it runs) is, and where its stream is.

    The stream's `stdout` offsets are the file's own byte offsets plus `base`: 0 until the file
    is first truncated or rotated; then the stream's length at that moment, so offsets keep
    growing while the file starts again (an `error` event with code `source_truncated` or
    `source_rotated` marks the place).
    """

    path: str = Field(..., description="The file tailed, as the --watch pattern matched it.")
    inode: int | None = Field(None, description="The inode followed (a new one: rotated).")
    base: int = Field(0, ge=0, description="Stream offset of the current file's first byte.")
    timing: str | None = Field(
        None, description="The `script --timing` file beside it, if there is one."
    )


class Job(BaseModel):
    """A job as the API shows it. Times are Unix epoch seconds."""

    id: str
    name: str | None = None
    kind: JobKind = Field(
        "job", description="`source`: a file tailed (`--watch`), not a process run."
    )
    source: SourceInfo | None = Field(None, description="For a source: its file.")
    status: JobStatus
    command: str | None = None
    argv: list[str]
    cwd: str | None = None
    pty: bool = False
    cols: int | None = Field(
        None, description="A pty job's window size now: as started, or its last resize."
    )
    rows: int | None = None
    shared: Literal["control", "view"] = "control"
    stdin: bool = False
    record_input: bool = Field(
        False, description="Its input is kept for its recording (`attach` says so)."
    )
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
    dropped_bytes: int = Field(
        0,
        description="Output dropped: past max_output_bytes, or refused by the store "
        "(a `store_failed` error event tells).",
    )
    last_seq: int = 0
    extracted: dict[str, str] = Field(
        default_factory=dict, description="The last value each extractor matched, by name."
    )
    progress: dict[str, Any] | None = Field(
        None, description="The latest `progress` event's data: percent, current, total, message."
    )

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
    #: what pays for the encodings cached on the event (the store's tail that holds it); None: an
    #: event read for one client, whose encodings are not worth keeping
    meter: Meter | None = field(default=None, repr=False)
    #: bytes charged to `meter` for what `cache` holds
    cached: int = field(default=0, repr=False)
    #: the first and the last event of an aligned batch of the tail: every client catching up
    #: reads the same batches there, so their joins are built once (see `store.sqlite`)
    opens: bool = field(default=False, repr=False)
    closes: bool = field(default=False, repr=False)

    @property
    def size(self) -> int:
        if self.raw is not None:
            return len(self.raw)
        # What memory holds it for: input kept for a recording is as big as it was typed.
        kept = self.data.get(RECORDED_INPUT)
        return 64 + len(kept) if isinstance(kept, str) else 64

    def remember(self, key: str, data: bytes) -> bytes:
        """Cache an encoding of the event under `key` if its meter pays for it; return `data`."""
        meter = self.meter
        if meter is not None and meter.charge(self, len(data)):
            self.cache[key] = data
        return data

    def forget(self) -> None:
        """Drop the cached encodings: the event has left the memory that paid for them."""
        self.meter = None
        self.cached = 0
        self.cache.clear()


class Meter(Protocol):
    def charge(self, ev: Event, nbytes: int) -> bool:
        """Count `nbytes` more cached on `ev`; False if `ev` should not keep them."""
        ...


class InputRequest(BaseModel):
    """`POST /jobs/{id}/input`: text in `data`, or bytes in `b64`; `eof` closes stdin afterwards."""

    model_config = ConfigDict(extra="forbid", strict=True)

    data: str | None = None
    b64: str | None = None
    eof: bool = False


_CONTEXT_DESCRIPTION = (
    "Paste refs (ctx://paste/<sha256>); the job gets their files' paths, `:`-separated, in "
    "JOBCAST_CONTEXT."
)
_STREAM_DESCRIPTION = (
    "true: the answer is the job's SSE stream itself (as GET /jobs/{id}/events), not the job."
)


class ChatRequest(BaseModel):
    """`POST /chat`: the `chat` template runs with `message` as its `message` parameter."""

    model_config = ConfigDict(extra="forbid", strict=True)

    message: ExecStr = Field(
        ..., min_length=1, description="Goes to the program as one argument, never through a shell."
    )
    context: list[Annotated[str, AfterValidator(_paste_ref)]] = Field(
        default_factory=list, max_length=64, description=_CONTEXT_DESCRIPTION
    )
    stream: bool = Field(False, description=_STREAM_DESCRIPTION)


class DirectRequest(BaseModel):
    """`POST /direct`: a template run from a command line, `NAME [--flag] [--key=value] [ARG...]`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    command: ExecStr = Field(
        ...,
        min_length=1,
        max_length=64 * 1024,
        description="A template's name and its arguments, split as a shell would (no shell runs "
        "it): `--flag` for a boolean, `--key=value`, and the other words for the remaining "
        "parameters in their declared order.",
    )
    context: list[Annotated[str, AfterValidator(_paste_ref)]] = Field(
        default_factory=list, max_length=64, description=_CONTEXT_DESCRIPTION
    )
    stream: bool = Field(False, description=_STREAM_DESCRIPTION)


class SignalRequest(BaseModel):
    # Strict: `true` is not signal 1 (SIGHUP), "9" is a name to look up, not a number.
    model_config = ConfigDict(extra="forbid", strict=True)

    signal: StrictStr | StrictInt = Field(..., description='A name ("INT", "SIGTERM") or a number.')


class ResizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cols: int = Field(..., ge=1, le=1000)
    rows: int = Field(..., ge=1, le=1000)


class PruneRequest(BaseModel):
    """`POST /prune`: which finished jobs to delete, oldest first; a job goes if any rule given
    says so. With no rule, the server's retention settings are applied now."""

    model_config = ConfigDict(extra="forbid", strict=True)

    older_than: float | None = Field(
        None, ge=0, le=1e12, description="Seconds since it finished (0: every finished job)."
    )
    max_jobs: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Keep this many finished jobs, the newest."
    )
    max_bytes: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Keep this many bytes of finished jobs' output, the newest.",
    )
    dry_run: bool = Field(False, description="Only say which jobs would be deleted.")


class PruneResult(BaseModel):
    """What `POST /prune` deleted (or would, with `dry_run`)."""

    deleted: list[str] = Field(..., description="Ids of the jobs deleted, oldest first.")
    bytes: int = Field(..., ge=0, description="Their output, stdout and stderr bytes together.")
    dry_run: bool


class PasteRequest(BaseModel):
    """`POST /pastes` as JSON; the content may also come as the raw body itself."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(..., description="The content; stored as UTF-8.")


class Paste(BaseModel):
    """A stored paste: give `ref` in a job's `context`."""

    ref: str = Field(..., description="ctx://paste/<sha256 of the content>")
    size: int = Field(..., ge=0, description="Bytes.")


class TraceEntry(BaseModel):
    """One operation in the trace ledger."""

    seq: int = Field(..., ge=1, description="Counts up from 1 across rotations and restarts.")
    ts: float
    who: str = Field(..., description="The token's name, `local` without auth, `server` itself.")
    op: str = Field(..., description="job.create, job.start, job.finish, job.cancel, ...")
    job: str | None = None
    outcome: str = Field(..., description="`ok`, an error code, or a finished job's status.")
    detail: dict[str, Any] = Field(default_factory=dict)


class TraceList(BaseModel):
    entries: list[TraceEntry] = Field(..., description="Newest first.")


_B32 = "0123456789abcdefghjkmnpqrstvwxyz"
_last_id_ms = 0


def new_job_id() -> str:
    """14 characters, URL-safe, sorting by creation: 10 of milliseconds, 4 random (Crockford base32)."""
    global _last_id_ms
    ms = max(int(time.time() * 1000), _last_id_ms + 1)
    _last_id_ms = ms
    head = "".join(_B32[(ms >> (5 * i)) & 31] for i in range(9, -1, -1))
    return head + "".join(secrets.choice(_B32) for _ in range(4))
