"""What every backend does the same with a job's record: build the `Job`, check a change.

A backend keeps a job as a flat record (a row, a hash) of the columns below plus the spec it was
started with; turning that into the API's `Job`, and the rules a status change or a delete
follows, are the same whatever holds it.
"""

from __future__ import annotations

from typing import Any

from ..errors import JobFinished, JobNotFinished, NameTaken
from ..models import EventType, Job, JobSpec, JobStatus, SourceInfo, can_transition

__all__ = [
    "JOB_FIELDS",
    "KEPT",
    "build_job",
    "check_deletable",
    "check_fields",
    "check_transition",
    "name_taken",
    "parse_source",
]

#: what `set_status` may change beside the status
JOB_FIELDS = frozenset(
    {"started_at", "finished_at", "exit_code", "signal", "pid", "reason", "dropped_bytes"}
)
#: events whose latest data the job keeps (`extracted`, `progress` in `GET /jobs/{id}`)
KEPT = frozenset({EventType.EXTRACTION, EventType.PROGRESS})


def build_job(rec: dict[str, Any], spec: dict[str, Any]) -> Job:
    """The job from its record (`source` a `SourceInfo` or None, `extracted` a dict, `progress`
    a dict or None, `cols`/`rows` None if never resized) and its spec, as JSON."""
    if spec["pty"] and rec.get("cols") is None:
        rec["cols"], rec["rows"] = spec["cols"], spec["rows"]  # never resized
    return Job(
        command=spec["command"],
        argv=JobSpec.model_validate(spec).resolved_argv(),
        cwd=spec["cwd"],
        pty=spec["pty"],
        shared=spec.get("shared", "control"),
        stdin=spec["stdin"],
        record_input=spec.get("record_input", False),
        timeout=spec["timeout"],
        labels=spec["labels"],
        **rec,
    )


def parse_source(blob: str | bytes | None) -> SourceInfo | None:
    return None if blob is None else SourceInfo.model_validate_json(blob)


def check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - JOB_FIELDS
    if unknown:
        raise ValueError(f"set_status cannot change {sorted(unknown)}")


def check_transition(job_id: str, current: JobStatus, status: JobStatus) -> None:
    if not can_transition(current, status):
        raise JobFinished(
            f"job {job_id} is already {current.value}; it cannot become {status.value}"
        )


def name_taken(name: str, holder: str) -> NameTaken:
    return NameTaken(
        f"the name {name!r} is held by job {holder}, which has not finished; choose another "
        "name or wait for it to end"
    )


def check_deletable(job: Job, *, live: bool = False) -> None:
    """Raise unless the job may be deleted (finished, and `live`: not still written here)."""
    if job.kind == "source" and not job.status.is_final:
        raise JobNotFinished(
            f"job {job.id} is a source, watched while its file matches a --watch pattern; "
            "it cannot be deleted while watched (drop the pattern and restart the server: "
            "the source is then finished, and can be deleted)"
        )
    if not job.status.is_final or live:
        raise JobNotFinished(
            f"job {job.id} is still {job.status.value}; cancel it first, then delete it"
        )
