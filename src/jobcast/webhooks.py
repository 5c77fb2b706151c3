"""Webhooks: which URLs may be told, how a delivery is signed, kept and sent.

A delivery is one event (`job.started`, `job.finished`) for one URL: `{"event", "job"}`, the job
as `GET /jobs/{id}` shows it. It is signed as Stripe signs (`X-Jobcast-Signature: t=<unix
time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), freshly at each attempt, so a receiver can refuse a
replay by its age; `verify` is the receiver's side.

The `Outbox` keeps the pending deliveries in `<data-dir>/webhooks.jsonl` (written off the loop,
before the first attempt), so a restart resumes them; the `Courier` sends them: an answer 2xx ends
a delivery delivered; 408, 429, 5xx, a timeout or no connection is retried after `backoff`,
doubling (or the receiver's `Retry-After`, if longer, up to an hour), up to `attempts` in all; any other answer ends it failed at once (a 4xx will not
change by asking again; a 3xx is not followed, so a receiver cannot send us elsewhere). Each
attempt goes into the trace ledger as `webhook.deliver`. Delivery is at least once: a server
stopped while an attempt is in flight tries again after its restart, with the same
`X-Jobcast-Delivery` id, for receivers to drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import fnmatch
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from . import __version__
from .models import WebhookURL

__all__ = [
    "EVENTS",
    "OUTBOX_NAME",
    "Courier",
    "Delivery",
    "Outbox",
    "WebhookConfig",
    "allowed",
    "retry_after",
    "sign",
    "verify",
]

logger = logging.getLogger("jobcast.webhooks")

OUTBOX_NAME = "webhooks.jsonl"
#: what a webhook can be told
EVENTS = ("job.started", "job.finished")
Event = Literal["job.started", "job.finished"]
#: answers worth asking again: the receiver is busy or briefly broken
_RETRY_STATUSES = frozenset({408, 429})
#: the longest a receiver's `Retry-After` is waited out (seconds); past it, the usual backoff's
MAX_RETRY_AFTER = 3600.0
#: deliveries in flight at once; the rest wait their turn (their wait is not an attempt)
_CONCURRENCY = 16


def _finished_only() -> list[Event]:
    return ["job.finished"]


class WebhookConfig(BaseModel):
    """One `[[webhooks]]` table: told of every job's `events`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: WebhookURL
    #: never shown: SecretStr keeps it out of reprs, as the config's `_describe` keeps it out of
    #: error messages
    secret: SecretStr | None = Field(None, min_length=1, description="Signs each delivery")
    events: list[Event] = Field(default_factory=_finished_only, min_length=1)


def allowed(url: str, patterns: Sequence[str]) -> str | None:
    """The first of `patterns` (`webhook_allow`) that admits `url`, or None.

    A pattern is a URL: the scheme and port must be the same, the host too (`*.example.com`
    matches its subdomains, fnmatch-style, on the host alone), and the path must start with the
    pattern's at a `/`. Matched part by part, not as one string, so `https://ci.example` admits
    neither `https://ci.example.evil.net` nor `https://ci.example@evil.net`.
    """
    u = urlsplit(url)
    for pattern in patterns:
        p = urlsplit(pattern)
        if u.scheme != p.scheme or u.port != p.port or not u.hostname or not p.hostname:
            continue
        if not fnmatch.fnmatchcase(u.hostname, p.hostname.lower()):
            continue
        prefix = p.path.rstrip("/")
        if u.path == prefix or u.path.startswith(prefix + "/") or not prefix:
            return pattern
    return None


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Jobcast-Signature` value for `body`: `t=<timestamp>,v1=<hex HMAC-SHA256>`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance: float = 300.0) -> bool:
    """The receiver's check: `header` signs `body` with `secret`, at most `tolerance` s ago."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass(slots=True)
class Delivery:
    """One event for one URL, as the outbox keeps it."""

    id: str
    event: str
    job: str
    url: str
    secret: str | None
    #: the JSON body, built once when the event happened: every attempt posts the same bytes
    body: str
    attempts: int = 0
    #: when the next attempt is due (Unix time)
    due: float = 0.0

    @classmethod
    def new(cls, event: str, job: str, url: str, secret: str | None, body: bytes) -> Delivery:
        return cls("wh_" + secrets.token_hex(8), event, job, url, secret, body.decode(), 0, 0.0)


class Outbox:
    """The pending deliveries of one data dir, in an append-only JSON-lines journal.

    Lines are `{"add": delivery}`, `{"try": id, "attempts", "due"}` and `{"done": id}`; a torn
    last line (a crash mid-write) is skipped. `open()` compacts the journal to what is pending;
    past that it is emptied whenever nothing is pending. Every write runs on one thread of its
    own, in order, so the loop never waits for the disk.
    """

    #: an empty outbox's journal is emptied once it is larger than this
    COMPACT_BYTES = 1 << 20

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / OUTBOX_NAME
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jobcast-webhooks")
        self._fd = -1
        #: ids pending, as the writer thread knows them (only it touches this)
        self._pending: set[str] = set()

    async def open(self) -> list[Delivery]:
        """Open the journal; the deliveries still pending, oldest first."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._open)

    def _open(self) -> list[Delivery]:
        pending: dict[str, Delivery] = {}
        with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as f:
            for line in f:
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(rec, dict):
                    continue
                if isinstance(rec.get("add"), dict):
                    with contextlib.suppress(TypeError):
                        added = Delivery(**rec["add"])
                        pending[added.id] = added
                elif (tried := pending.get(str(rec.get("try")))) is not None:
                    tried.attempts, tried.due = int(rec["attempts"]), float(rec["due"])
                elif rec.get("done") in pending:
                    del pending[rec["done"]]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(b"".join(_line({"add": asdict(d)}) for d in pending.values()))
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self._pending = set(pending)
        return list(pending.values())

    async def add(self, deliveries: list[Delivery]) -> None:
        """Keep `deliveries` as pending; returns once they are written (survive a kill)."""
        data = b"".join(_line({"add": asdict(d)}) for d in deliveries)
        await self._run(self._append, data, [d.id for d in deliveries], False)

    async def tried(self, d: Delivery) -> None:
        data = _line({"try": d.id, "attempts": d.attempts, "due": d.due})
        await self._run(self._append, data, [], False)

    async def done(self, d: Delivery) -> None:
        await self._run(self._append, _line({"done": d.id}), [d.id], True)

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def _run(self, fn: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _append(self, data: bytes, ids: list[str], done: bool) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        if done:
            self._pending.difference_update(ids)
            if not self._pending and os.fstat(self._fd).st_size > self.COMPACT_BYTES:
                os.ftruncate(self._fd, 0)
        else:
            self._pending.update(ids)


def _line(rec: dict[str, Any]) -> bytes:
    return orjson.dumps(rec) + b"\n"


#: records one attempt in the trace: (delivery, outcome, detail)
Recorder = Callable[[Delivery, str, dict[str, Any]], Awaitable[None]]


class Courier:
    """Sends deliveries, each in a task of its own, retrying as the module's docstring says."""

    def __init__(
        self,
        outbox: Outbox,
        record: Recorder,
        *,
        attempts: int,
        backoff: float,
        timeout: float,
    ) -> None:
        self._outbox, self._record = outbox, record
        self._attempts, self._backoff = attempts, backoff
        # trust_env off: settings come from the config alone (no proxy from the environment).
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        )
        self._slots = asyncio.Semaphore(_CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, deliveries: list[Delivery]) -> None:
        """Start sending (they are in the outbox already)."""
        for d in deliveries:
            task = asyncio.create_task(self._deliver(d), name=f"jobcast-webhook-{d.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Stop sending; what is not delivered stays in the outbox for the next start."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, d: Delivery) -> None:
        try:
            while True:
                if (wait := d.due - time.time()) > 0:
                    await asyncio.sleep(wait)
                async with self._slots:
                    outcome, detail = await self._attempt(d)
                d.attempts += 1
                detail = {"url": _shown(d.url), "event": d.event, "attempt": d.attempts, **detail}
                if outcome == "retry" and d.attempts >= self._attempts:
                    outcome, detail["gave_up"] = "failed", f"after {d.attempts} attempts"
                if outcome == "retry":
                    # A receiver's Retry-After (a 429 or 503's) is waited out, within reason.
                    asked = min(detail.get("retry_after", 0.0), MAX_RETRY_AFTER)
                    delay = max(self._backoff * 2 ** (d.attempts - 1), asked)
                    d.due = time.time() + delay
                    detail["retry_in"] = round(delay, 3)
                    await self._outbox.tried(d)
                    await self._record(d, outcome, detail)
                    continue
                await self._outbox.done(d)
                await self._record(d, outcome, detail)
                return
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not end the others' deliveries silently
            logger.exception("webhook delivery %s to %s broke", d.id, _shown(d.url))

    async def _attempt(self, d: Delivery) -> tuple[str, dict[str, Any]]:
        """One POST: `ok`, `retry` or `failed`, and what the trace says of it."""
        body = d.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"jobcast/{__version__}",
            "X-Jobcast-Event": d.event,
            "X-Jobcast-Delivery": d.id,
        }
        if d.secret is not None:
            headers["X-Jobcast-Signature"] = sign(d.secret, body)
        start = time.monotonic()
        try:
            r = await self._client.post(d.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return "retry", {"error": "timed out"}
        except httpx.HTTPError as e:
            return "retry", {"error": f"{type(e).__name__}: {e}"[:300]}
        detail: dict[str, Any] = {"status": r.status_code, "ms": _ms(start)}
        if r.is_success:
            return "ok", detail
        if r.status_code >= 500 or r.status_code in _RETRY_STATUSES:
            if (after := retry_after(r.headers.get("Retry-After"))) is not None:
                detail["retry_after"] = after
            return "retry", detail
        if r.is_redirect:
            detail["error"] = "redirects are not followed"
        return "failed", detail


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (RFC 9110: seconds, or an HTTP date); None if it
    says nothing usable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _shown(url: str) -> str:
    """The URL without its query: a receiver's token may ride there, and the trace keeps none."""
    u = urlsplit(url)
    return u._replace(query="", fragment="").geturl()


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)
