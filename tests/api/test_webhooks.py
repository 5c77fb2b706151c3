"""Webhooks on a real server, told to a real receiver on loopback: global and per-job hooks,
signatures, retries in the trace, a delivery pending across a restart, and a receiver that
hangs without holding up any job."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx
import orjson

from jobcast.webhooks import OUTBOX_NAME
from tests.conftest import free_port
from tests.helpers import Receiver, async_wait_for


def _config(tmp_path, text: str) -> list[str]:
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text("webhook_backoff_seconds = 0.05\n" + text)
    return ["--config", str(cfg)]


async def _start(server_factory, data_dir, extra):
    server = server_factory(data_dir, extra=extra)
    # In a thread: the receiver on this loop must answer meanwhile.
    await asyncio.to_thread(server.start)
    return server


async def _finished(client, job_id):
    async def done():
        job = (await client.get(f"/jobs/{job_id}")).json()
        return job if job["status"] not in ("queued", "running") else None

    return await async_wait_for(done, within=30)


async def _deliveries(client, job_id, count):
    async def entries():
        r = await client.get("/trace", params={"op": "webhook.deliver", "job": job_id})
        got = list(reversed(r.json()["entries"]))
        return got if len(got) >= count else None

    return await async_wait_for(entries, within=30)


def _check_signature(secret: str, headers: dict[str, str], body: bytes) -> None:
    """As a receiver checks it, without jobcast's own code."""
    fields = dict(part.split("=", 1) for part in headers["X-Jobcast-Signature"].split(","))
    mac = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(mac.hexdigest(), fields["v1"])


async def test_a_global_webhook_gets_start_and_end_signed(server_factory, data_dir, tmp_path):
    receiver = await Receiver(free_port()).start()
    finished_only = Receiver(free_port())
    await finished_only.start()
    extra = _config(
        tmp_path,
        f'[[webhooks]]\nurl = "{receiver.url()}"\nsecret = "s3cret"\n'
        'events = ["job.started", "job.finished"]\n'
        f'[[webhooks]]\nurl = "{finished_only.url("/other")}"\n',
    )
    server = await _start(server_factory, data_dir, extra)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, timeout=30
        ) as client:
            # It runs until cancelled: its start is told of while it runs.
            spec = {"argv": ["cat"], "stdin": True}
            job = (await client.post("/jobs", json=spec)).json()

            async def started():
                return len(receiver.requests) == 1

            await async_wait_for(started, within=30)
            await client.post(f"/jobs/{job['id']}/cancel")
            final = await _finished(client, job["id"])
            traced = await _deliveries(client, job["id"], 3)
    finally:
        await receiver.stop()
        await finished_only.stop()
    events = [orjson.loads(body) for _, body in receiver.requests]
    assert [e["event"] for e in events] == ["job.started", "job.finished"]
    assert events[1]["job"] == final  # the job as GET /jobs/{id} shows it
    assert final["status"] == "cancelled" and events[0]["job"]["status"] == "running"
    for headers, body in receiver.requests:
        _check_signature("s3cret", headers, body)
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Jobcast-Event"] == orjson.loads(body)["event"]
    # The other hook: the end only, unsigned (it has no secret).
    [(headers, body)] = finished_only.requests
    assert orjson.loads(body) == events[1] and "X-Jobcast-Signature" not in headers
    assert sorted((e["who"], e["outcome"], e["detail"]["event"]) for e in traced) == [
        ("server", "ok", "job.finished"),
        ("server", "ok", "job.finished"),
        ("server", "ok", "job.started"),
    ]
    assert b"s3cret" not in (data_dir / "trace.jsonl").read_bytes()


async def test_a_jobs_own_webhook_when_allowed_and_refused_otherwise(
    server_factory, data_dir, tmp_path
):
    receiver = await Receiver(free_port()).start()
    extra = _config(tmp_path, f'webhook_allow = ["{receiver.url("/allowed")}"]\n')
    server = await _start(server_factory, data_dir, extra)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, timeout=30
        ) as client:
            own = {"url": receiver.url("/allowed/job"), "secret": "mine"}
            job = (await client.post("/jobs", json={"argv": ["true"], "webhook": own})).json()
            final = await _finished(client, job["id"])
            [entry] = await _deliveries(client, job["id"], 1)
            refused = []
            for url in [
                receiver.url("/other"),
                receiver.url("/allowedx"),
                f"http://127.0.0.1:{receiver.port}@evil.example/allowed",
                f"http://127.0.0.1.evil.example:{receiver.port}/allowed",
            ]:
                r = await client.post("/jobs", json={"argv": ["true"], "webhook": url})
                refused.append((r.status_code, r.json()["error"].get("rule")))
            denials = await client.get("/trace", params={"op": "policy.deny"})
            listed = (await client.get("/jobs")).json()["jobs"]
    finally:
        await receiver.stop()
    [(headers, body)] = receiver.requests
    _check_signature("mine", headers, body)
    assert orjson.loads(body) == {"event": "job.finished", "job": final}
    assert entry["outcome"] == "ok" and entry["detail"]["url"] == own["url"]
    # The URL with a user part is not even a webhook URL; the others are outside webhook_allow.
    assert refused == [(403, "webhook_allow"), (403, "webhook_allow"), (422, None)] + [
        (403, "webhook_allow")
    ]
    assert len(denials.json()["entries"]) == 3
    assert [j["id"] for j in listed] == [job["id"]]  # the refused jobs were never created
    assert b"mine" not in (data_dir / "trace.jsonl").read_bytes()


def test_without_webhook_allow_no_job_may_name_a_webhook(api):
    r = api.post("/jobs", json={"argv": ["true"], "webhook": "https://ci.example/h"})
    assert r.status_code == 403
    error = r.json()["error"]
    assert (
        error["rule"] == "webhook_allow" and "`webhook_allow` setting is empty" in error["message"]
    )


async def test_retries_after_500s_are_all_traced(server_factory, data_dir, tmp_path):
    receiver = await Receiver(free_port(), statuses=[500, 500, 200]).start()
    extra = _config(tmp_path, f'[[webhooks]]\nurl = "{receiver.url()}"\nsecret = "s"\n')
    server = await _start(server_factory, data_dir, extra)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, timeout=30
        ) as client:
            job = (await client.post("/jobs", json={"argv": ["true"]})).json()
            traced = await _deliveries(client, job["id"], 3)
    finally:
        await receiver.stop()
    assert [(e["outcome"], e["detail"]["attempt"], e["detail"]["status"]) for e in traced] == [
        ("retry", 1, 500),
        ("retry", 2, 500),
        ("ok", 3, 200),
    ]
    assert [e["detail"].get("retry_in") for e in traced] == [0.05, 0.1, None]
    assert len(receiver.requests) == 3
    assert len({body for _, body in receiver.requests}) == 1  # the same body each time
    for headers, body in receiver.requests:
        _check_signature("s", headers, body)


async def test_a_pending_delivery_survives_a_restart(server_factory, data_dir, tmp_path):
    receiver = Receiver(free_port())  # not up yet: the first attempt finds no one
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(f'webhook_backoff_seconds = 1.0\n[[webhooks]]\nurl = "{receiver.url()}"\n')
    first = await _start(server_factory, data_dir, ["--config", str(cfg)])
    async with httpx.AsyncClient(base_url=first.url, headers=first.headers, timeout=30) as client:
        job = (await client.post("/jobs", json={"argv": ["true"]})).json()
        [tried] = await _deliveries(client, job["id"], 1)
    assert tried["outcome"] == "retry" and "ConnectError" in tried["detail"]["error"]
    await asyncio.to_thread(first.stop)
    await receiver.start()
    try:
        second = await _start(server_factory, data_dir, ["--config", str(cfg)])
        async with httpx.AsyncClient(
            base_url=second.url, headers=second.headers, timeout=30
        ) as client:
            traced = await _deliveries(client, job["id"], 2)
            while traced[-1]["outcome"] == "retry":
                traced = await _deliveries(client, job["id"], len(traced) + 1)
        await asyncio.to_thread(second.stop)
        logs = [(tmp_path / f"server-{s.port}.log").read_text() for s in (first, second)]
        assert not any("Traceback" in log for log in logs)
        assert "resuming 1 webhook deliveries" in logs[1]
    finally:
        await receiver.stop()
    # Retried before the restart (once, unless the server was slow to stop), delivered after it.
    assert [e["outcome"] for e in traced] == ["retry"] * (len(traced) - 1) + ["ok"]
    assert [e["detail"]["attempt"] for e in traced] == list(range(1, len(traced) + 1))
    [(_, body)] = receiver.requests  # delivered once
    assert orjson.loads(body)["job"]["id"] == job["id"]
    # Nothing is left pending: a third start would send nothing.
    assert (data_dir / OUTBOX_NAME).read_bytes().count(b'"done"') == 1


async def test_a_receiver_that_hangs_holds_up_no_job(server_factory, data_dir, tmp_path):
    receiver = await Receiver(free_port(), hold=True).start()
    extra = _config(
        tmp_path,
        f'webhook_timeout_seconds = 120\n[[webhooks]]\nurl = "{receiver.url()}"\n',
    )
    server = await _start(server_factory, data_dir, extra)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.headers, timeout=30
        ) as client:
            first = (await client.post("/jobs", json={"argv": ["true"]})).json()
            await _finished(client, first["id"])

            async def held():
                return len(receiver.requests) == 1

            await async_wait_for(held, within=30)
            # While the receiver holds the first job's delivery, more jobs run and end.
            more = [
                (await client.post("/jobs", json={"argv": ["echo", str(i)]})).json()
                for i in range(3)
            ]
            ends = [await _finished(client, j["id"]) for j in more]
            assert receiver.answered == 0
            receiver.release()
            traced = await _deliveries(client, more[-1]["id"], 1)
    finally:
        await receiver.stop()
    assert all(j["status"] == "succeeded" for j in ends)
    assert traced[0]["outcome"] == "ok"
