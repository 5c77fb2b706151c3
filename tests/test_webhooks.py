"""Webhooks without a server: which URLs `webhook_allow` admits, signatures, the outbox on disk,
and the courier against a real receiver on loopback (retries, backoff, what ends a delivery)."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import pytest

from jobcast.webhooks import (
    OUTBOX_NAME,
    Courier,
    Delivery,
    Outbox,
    allowed,
    retry_after,
    sign,
    verify,
)
from tests.conftest import free_port
from tests.helpers import Receiver, async_wait_for


@pytest.mark.parametrize(
    ("url", "admitted"),
    [
        ("https://ci.example/hooks", True),
        ("https://ci.example/hooks/jobcast?x=1", True),
        ("https://ci.example/hooksmith", False),  # a prefix ends at a `/`
        ("https://ci.example/other", False),
        ("http://ci.example/hooks", False),  # the scheme must be the same
        ("https://ci.example:8443/hooks", False),  # and the port
        ("https://ci.example.evil.net/hooks", False),  # the host is compared whole
        ("https://evil.net/hooks", False),
        ("https://a.team.example/x", True),  # `*.team.example`
        ("https://team.example.evil/x", False),
        ("http://127.0.0.1:9000/anything", True),  # a pattern without a path: any path
    ],
)
def test_webhook_allow_compares_url_parts_not_strings(url, admitted):
    patterns = ["https://ci.example/hooks/", "https://*.team.example", "http://127.0.0.1:9000"]
    assert (allowed(url, patterns) is not None) is admitted


def test_a_signature_is_an_hmac_over_timestamp_dot_body():
    body = b'{"event":"job.finished"}'
    header = sign("s3cret", body)
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(b"s3cret", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert v1 == expected
    assert verify("s3cret", header, body)
    assert not verify("other", header, body)
    assert not verify("s3cret", header, body + b" ")
    assert not verify("s3cret", sign("s3cret", body, int(time.time()) - 3600), body)  # a replay
    assert not verify("s3cret", "garbage", body)


async def test_the_outbox_keeps_what_is_pending_across_reopening(tmp_path):
    box = Outbox(tmp_path)
    assert await box.open() == []
    a = Delivery.new("job.finished", "j1", "http://127.0.0.1:1/a", "s", b"{}")
    b = Delivery.new("job.finished", "j2", "http://127.0.0.1:1/b", None, b"{}")
    await box.add([a, b])
    b.attempts, b.due = 2, 123.5
    await box.tried(b)
    await box.done(a)
    await box.close()
    journal = tmp_path / OUTBOX_NAME
    # Torn by a crash: not a `done`.
    journal.write_bytes(journal.read_bytes() + b'{"done": "' + b.id.encode()[:5])
    again = Outbox(tmp_path)
    assert await again.open() == [b]
    await again.close()
    # Reopening compacted the journal to the one pending delivery.
    lines = (tmp_path / OUTBOX_NAME).read_bytes().splitlines()
    assert [orjson.loads(line)["add"]["id"] for line in lines] == [b.id]


async def _courier(tmp_path, attempts=5, backoff=0.01, wait=10.0):
    box = Outbox(tmp_path)
    await box.open()
    traced: list[tuple[str, dict]] = []

    async def record(d, outcome, detail):
        traced.append((outcome, detail))

    courier = Courier(box, record, attempts=attempts, backoff=backoff, timeout=wait)
    return box, courier, traced


async def _send(box, courier, url, secret="s"):
    d = Delivery.new("job.finished", "j1", url, secret, b'{"event":"job.finished"}')
    await box.add([d])
    courier.send([d])
    await async_wait_for(lambda: _idle(courier))
    return d


async def _idle(courier):
    return courier.pending == 0


async def test_retries_back_off_doubling_until_a_2xx(tmp_path):
    receiver = await Receiver(free_port(), statuses=[500, 503, 429, 200]).start()
    box, courier, traced = await _courier(tmp_path, backoff=0.02)
    try:
        await _send(box, courier, receiver.url() + "?token=abc")
    finally:
        await courier.close()
        await receiver.stop()
    assert [o for o, _ in traced] == ["retry", "retry", "retry", "ok"]
    assert [d["attempt"] for _, d in traced] == [1, 2, 3, 4]
    assert [d.get("retry_in") for _, d in traced] == [0.02, 0.04, 0.08, None]
    assert [d["status"] for _, d in traced] == [500, 503, 429, 200]
    assert all(d["url"] == receiver.url() for _, d in traced)  # the query is not traced
    assert len(receiver.requests) == 4
    for headers, body in receiver.requests:
        assert verify("s", headers["X-Jobcast-Signature"], body)
    # Delivered: nothing is left pending for a restart.
    assert await Outbox(tmp_path).open() == []
    await box.close()


async def test_a_receivers_retry_after_is_waited_out(tmp_path):
    receiver = await Receiver(free_port(), statuses=[429, 503], retry_after="1").start()
    box, courier, traced = await _courier(tmp_path, backoff=0.01)
    try:
        await _send(box, courier, receiver.url())
    finally:
        await courier.close()
        await receiver.stop()
    # asked for a second each time, not the 10 and 20 ms of the backoff
    assert [(d.get("retry_after"), d.get("retry_in")) for _, d in traced] == [
        (1.0, 1.0),
        (1.0, 1.0),
        (None, None),
    ]
    await box.close()


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("120") == 120.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0  # past
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("-5") is None


@pytest.mark.parametrize(("status", "gets"), [(404, 1), (400, 1), (302, 1), (500, 3)])
async def test_what_ends_a_delivery_failed(tmp_path, status, gets):
    receiver = await Receiver(free_port(), statuses=[status] * 5).start()
    box, courier, traced = await _courier(tmp_path, attempts=3)
    try:
        await _send(box, courier, receiver.url())
    finally:
        await courier.close()
        await receiver.stop()
    assert len(receiver.requests) == gets  # a redirect is not followed either
    assert [o for o, _ in traced] == ["retry"] * (gets - 1) + ["failed"]
    assert traced[-1][1]["status"] == status
    await box.close()


async def test_a_receiver_that_is_down_is_retried_then_given_up(tmp_path):
    box, courier, traced = await _courier(tmp_path, attempts=2)
    try:
        await _send(box, courier, f"http://127.0.0.1:{free_port()}/hook", secret=None)
    finally:
        await courier.close()
    assert [o for o, _ in traced] == ["retry", "failed"]
    assert "ConnectError" in traced[0][1]["error"]
    assert traced[-1][1]["gave_up"] == "after 2 attempts"
    await box.close()


async def test_a_slow_receiver_times_out_and_is_retried(tmp_path):
    receiver = await Receiver(free_port(), hold=True).start()
    box, courier, traced = await _courier(tmp_path, attempts=2, wait=0.2)
    try:
        await _send(box, courier, receiver.url())
    finally:
        await courier.close()
        await receiver.stop()
    assert [(o, d.get("error")) for o, d in traced] == [
        ("retry", "timed out"),
        ("failed", "timed out"),
    ]
    await box.close()
