"""The server's webhooks: which jobs' starts and ends become deliveries (read from the store's
firehose, as the ledger's `Lifecycle` does, so the runner never waits for a receiver), and the
outbox and courier that the lifespan opens, resumes and closes."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..errors import JobNotFound, PolicyDenied
from ..models import EventType, JobSpec
from ..webhooks import Courier, Delivery, Outbox, allowed
from .ledger import SERVER
from .state import State

__all__ = ["Webhooks", "check_job_webhook"]

logger = logging.getLogger("jobcast.webhooks")


def check_job_webhook(state: State, spec: JobSpec) -> None:
    """Refuse a job's `webhook` that `webhook_allow` does not admit (403, rule `webhook_allow`)."""
    if spec.webhook is None:
        return
    patterns = state.settings.webhook_allow
    if allowed(spec.webhook.url, patterns) is None:
        why = (
            "matches none of its patterns"
            if patterns
            else "is empty, so jobs may not name webhooks"
        )
        raise PolicyDenied(
            f"webhook: the URL is not allowed: the server's `webhook_allow` setting {why}",
            "webhook_allow",
        )


class Webhooks:
    """Follows the firehose from global position `after`; each job event that some webhook wants
    becomes a delivery, kept in the outbox, then handed to the courier. `start()` (resuming what
    a previous run left pending), `run()` until cancelled, `flush()`, then `close()`."""

    def __init__(self, state: State, after: int) -> None:
        self._state, self.after = state, after
        s = state.settings
        self._outbox = Outbox(s.data_dir)
        self._courier = Courier(
            self._outbox,
            self._record,
            attempts=s.webhook_attempts,
            backoff=s.webhook_backoff_seconds,
            timeout=s.webhook_timeout_seconds,
        )
        self._wants_start = any("job.started" in w.events for w in s.webhooks)

    @staticmethod
    def needed(state: State) -> bool:
        """False when no webhook can ever fire: nothing is followed, nothing costs."""
        return bool(state.settings.webhooks or state.settings.webhook_allow)

    async def start(self) -> None:
        pending = await self._outbox.open()
        if pending:
            logger.info("resuming %d webhook deliveries left pending", len(pending))
        self._courier.send(pending)

    async def run(self) -> None:
        store = self._state.store
        while not store.closed:
            if not await self.flush():
                self.after = max(self.after, store.last_gid())
                await store.wait_all(self.after)

    async def flush(self) -> bool:
        """Turn the job events past `after` into deliveries; False if there were none."""
        store = self._state.store
        found = False
        while events := await store.read_all(self.after):
            found = True
            self.after = events[-1].gid
            deliveries: list[Delivery] = []
            for ev in events:
                if ev.type is EventType.COMPLETE:
                    deliveries += await self._deliveries("job.finished", ev.job)
                elif (
                    self._wants_start
                    and ev.type is EventType.STATUS
                    and ev.data.get("status") == "running"
                ):
                    deliveries += await self._deliveries("job.started", ev.job)
            if deliveries:
                await self._outbox.add(deliveries)
                self._courier.send(deliveries)
        return found

    async def _deliveries(self, event: str, job_id: str) -> list[Delivery]:
        settings, store = self._state.settings, self._state.store
        targets = [
            (w.url, w.secret.get_secret_value() if w.secret else None)
            for w in settings.webhooks
            if event in w.events
        ]
        try:
            if event == "job.finished" and settings.webhook_allow:
                own = (await store.job_spec(job_id)).webhook
                if own is not None:
                    targets.append((own.url, own.secret))
            if not targets:
                return []
            job = await store.get_job(job_id)
        except JobNotFound:  # deleted already: there is nothing left to tell of it
            return []
        body = orjson.dumps({"event": event, "job": job.model_dump(mode="json")})
        return [Delivery.new(event, job_id, url, secret, body) for url, secret in targets]

    async def _record(self, d: Delivery, outcome: str, detail: dict[str, Any]) -> None:
        await self._state.trace.record(
            "webhook.deliver", who=SERVER, job=d.job, outcome=outcome, detail=detail
        )
        if outcome == "failed":
            logger.warning("webhook %s for job %s failed: %s", d.event, d.job, detail)

    async def close(self) -> None:
        """Stop sending; the undelivered stay in the outbox for the next start."""
        await self._courier.close()
        await self._outbox.close()
