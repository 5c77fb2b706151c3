"""The store's interface: jobs' metadata and each job's ordered event log, with wake-ups at the tail.

The store is the single source of truth (runner -> store -> subscribers). A subscriber is a cursor
(`after`) over `read`/`wait`; it holds no queue of its own. Every backend (SQLite now, Redis next)
implements `Store` and passes `tests/store/test_contract.py`.

Durability: an event is handed to readers and listeners only once it is stored for good (committed),
so a crash never takes back, or renumbers, an event that a client was given. Every call that writes
returns once what it wrote is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, Protocol, TypedDict

from ..hub import Listener
from ..models import Event, EventType, Job, JobKind, JobList, JobSpec, JobStatus, SourceInfo

__all__ = ["BATCH_BYTES", "DiskUsage", "FinishedJob", "ProcessInfo", "Store", "StreamName"]

#: the most one `read` returns (and one joined write carries to a client); a backend that keeps a
#: tail in memory cuts it into batches of this size, the same for every reader
BATCH_BYTES = 256 * 1024

StreamName = Literal["stdout", "stderr", "all"]

#: pid, process group id and start time (clock ticks since boot, /proc/PID/stat field 22): enough
#: to recognise the very process later and never signal a reused pid.
ProcessInfo = tuple[int, int, int]


class FinishedJob(NamedTuple):
    """What retention needs to know of a finished job."""

    id: str
    name: str | None
    #: when it ended (Unix time); its creation time if it never recorded an end
    finished_at: float
    #: stdout and stderr bytes together
    output_bytes: int


class DiskUsage(TypedDict):
    """The space the store takes on disk, in bytes (`GET /status`)."""

    #: every file under the data dir: database, output, token, ledger
    data_dir_bytes: int
    #: the database file itself (SQLite), without its write-ahead log
    db_bytes: int
    #: of `db_bytes`, the free pages (left by deletes) that new writes reuse or a vacuum gives back
    db_free_bytes: int
    #: the write-ahead log, copied into the database and restarted at checkpoints
    wal_bytes: int
    #: the jobs' output files
    output_bytes: int


class Store(Protocol):
    async def open(self) -> None:
        """Create or migrate storage. Call once before anything else."""

    async def close(self) -> None:
        """Flush and release everything; wakes all waiters so they can see the end."""

    def wake_all(self) -> None:
        """Wake every waiter now, so followers re-check whether the server is closing."""

    def wake_firehose(self) -> None:
        """Wake the firehose's waiters (`wait_all`) now: news besides job events (the trace
        ledger's) is there for them."""

    @property
    def closed(self) -> bool:
        """True once `close` began: followers end their streams."""

    # -- jobs ---------------------------------------------------------------------------------

    async def create_job(self, spec: JobSpec, *, source: SourceInfo | None = None) -> Job:
        """Record a new `queued` job and append its first event (`status` queued).

        With `source`, the job is a source (`kind` "source"): a file tailed, not a process.

        Raises:
            NameTaken: `spec.name` is held by a job that has not finished.
        """

    async def find_source(self, path: str) -> Job | None:
        """The newest source job that tails `path`, finished or not; None if there is none."""

    async def set_source(
        self, job_id: str, source: SourceInfo, notice: dict[str, Any] | None = None
    ) -> None:
        """Record a source's new state (after a truncation or rotation), and with `notice` the
        `error` event that reports it, in one step: a crash never keeps one without the other.
        """

    async def get_job(self, ref: str) -> Job:
        """A job by id, or by name (the active job of that name, else the newest).

        Raises:
            JobNotFound: no such job.
        """

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        label: dict[str, str] | None = None,
        name: str | None = None,
        kind: JobKind | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobList:
        """Newest first; `cursor` (from a previous page's `next_cursor`) continues with older jobs.
        `kind`: only jobs (processes run) or only sources (files tailed)."""

    async def unfinished_jobs(self) -> list[tuple[Job, ProcessInfo | None]]:
        """Jobs queued or running, oldest first, with their process identity if one was spawned."""

    async def job_spec(self, job_id: str) -> JobSpec:
        """What the job was started with (env included), to run a queued job after a restart.

        Raises:
            JobNotFound: no such job.
        """

    async def set_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        process: ProcessInfo | None = None,
        **fields: Any,
    ) -> Job:
        """Change a job's status (only along `TRANSITIONS`) and append a `status` event.

        `fields` updates other columns at the same time: started_at, finished_at, exit_code, signal,
        pid, reason, dropped_bytes; `process` remembers the spawned process as `set_process` does,
        in the same step. Only the runner calls this. A final status appends the job's `complete`
        event too (its last event), in the same step.

        Raises:
            JobFinished: the job already has a final status.
        """

    async def set_process(self, job_id: str, info: ProcessInfo) -> None:
        """Remember the spawned process, so a restarted server can end it."""

    async def delete_job(self, job_id: str) -> None:
        """Forget a finished job, its events and its output.

        Raises:
            JobNotFinished: the job is still queued or running.
        """

    async def delete_jobs(self, job_ids: Sequence[str]) -> list[str]:
        """Forget many finished jobs, their events and output, a chunk per write, so no write
        holds the store for long; the space is given back (see each backend) before it returns.

        Jobs that are queued, running or unknown are skipped, not raised about.

        Returns:
            The ids deleted, in the order given.
        """

    async def finished_jobs(self) -> list[FinishedJob]:
        """Every finished job, the one that ended first first (ties by id)."""

    async def disk_usage(self) -> DiskUsage:
        """What the store takes on disk now."""

    async def count_jobs(self) -> dict[str, int]:
        """How many jobs there are of each status (statuses with none left out)."""

    @property
    def output_bytes_appended(self) -> int:
        """Output bytes (stdout and stderr) appended since the store was opened."""

    # -- events ---------------------------------------------------------------------------------

    async def append(
        self,
        job_id: str,
        type: EventType,
        data: dict[str, Any] | None = None,
        raw: bytes | None = None,
        *,
        ts: float | None = None,
    ) -> Event:
        """Append one event; once it is stored, hand it to the listeners and wake the waiters.

        For `stdout`/`stderr` events pass the bytes as `raw`; the store keeps them exactly and adds
        `offset` (in that stream) and `length` to `data`. Returns once the event is stored and
        handed to the listeners. `ts` is the event's time when it is not now (a source's output
        timed by its recording's `.timing` file).
        """

    async def read(self, job_id: str, after: int, max_bytes: int = BATCH_BYTES) -> list[Event]:
        """Events with seq > `after`, in order: at least one if there is one, then up to `max_bytes`."""

    async def wait(self, job_id: str, after: int) -> None:
        """Until the job has an event past `after`, or the next tick (about a second), or close.

        Callers re-read after it returns; the tick lets them send heartbeats and notice stalls
        without a timer of their own.
        """

    def listen(self, job_id: str, after: int, listener: Listener) -> bool:
        """Hand each event of the job past `after` to `listener` as it is stored, in order.

        False (and nothing registered) if there is already an event past `after`, or none will
        come: the caller reads instead. `listener` is also called with None at every tick and on
        close, and is dropped once it returns False (see `Hub`).
        """

    def is_live(self, job_id: str) -> bool:
        """True while the job may still get events (it has no `complete` event yet, as far as
        this node knows). Cheap: followers ask it at every tick."""

    async def read_all(
        self, after: int, *, output: bool = False, max_bytes: int = BATCH_BYTES
    ) -> list[Event]:
        """The firehose: events of all jobs with `gid` > `after`; lifecycle events only unless `output`."""

    async def wait_all(self, after: int) -> None:
        """Until any job has an event past global position `after`, or the next tick, or close."""

    def last_gid(self) -> int:
        """The global position of the newest event (where a new firehose follower starts)."""

    async def read_output(
        self, job_id: str, stream: StreamName, offset: int = 0, length: int | None = None
    ) -> bytes:
        """Raw output bytes from `offset` in `stream` ("all" is both, interleaved as they came)."""

    async def output_size(self, job_id: str, stream: StreamName) -> int:
        """Bytes recorded so far in `stream`."""
