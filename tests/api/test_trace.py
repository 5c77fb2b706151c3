"""The ledger on a real server: a scripted session gives exactly its entries; GET /trace filters;
the firehose carries them as `trace` events."""

from __future__ import annotations

import orjson

from jobcast.protocol import SSEParser
from tests.conftest import wait_job
from tests.helpers import wait_for


def _entries(api, **params):
    r = api.get("/trace", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def test_a_scripted_session_gives_exactly_its_ledger_entries(api, server):
    done = api.post("/jobs", json={"argv": ["sh", "-c", "exit 3"]}).json()
    wait_job(api, done["id"])
    cat = api.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
    wait_for(lambda: api.get(f"/jobs/{cat['id']}").json()["status"] == "running")
    assert api.post(f"/jobs/{cat['id']}/input", json={"data": "secret\n"}).status_code == 200
    assert api.post(f"/jobs/{cat['id']}/signal", json={"signal": "CONT"}).status_code == 200
    assert api.post(f"/jobs/{cat['id']}/cancel").status_code == 200
    wait_job(api, cat["id"])
    assert api.post(f"/jobs/{cat['id']}/input", json={"data": "late"}).status_code == 409
    assert api.delete(f"/jobs/{done['id']}").status_code == 204
    bad = {"Authorization": "Bearer not-a-token"}
    assert api.get("/jobs", headers=bad).status_code == 401
    # no webhook_allow: a job naming a webhook is denied by the policy, and not created
    hook = {"argv": ["true"], "webhook": "http://127.0.0.1:9/hook"}
    assert api.post("/jobs", json=hook).status_code == 403
    wait_for(lambda: len(_entries(api)) >= 13)
    got = [(e["op"], e["job"], e["who"], e["outcome"]) for e in reversed(_entries(api))]
    d, c = done["id"], cat["id"]
    assert got[:3] == [
        ("job.create", d, "admin", "ok"),
        ("job.start", d, "admin", "ok"),
        ("job.finish", d, "admin", "failed"),
    ]
    assert got[3:8] == [
        ("job.create", c, "admin", "ok"),
        ("job.start", c, "admin", "ok"),
        ("job.input", c, "admin", "ok"),
        ("job.signal", c, "admin", "ok"),
        ("job.cancel", c, "admin", "ok"),
    ]
    assert got[8:] == [
        ("job.finish", c, "admin", "cancelled"),
        ("job.input", c, "admin", "job_finished"),
        ("job.delete", d, "admin", "ok"),
        ("auth.fail", None, "anonymous", "unauthorized"),
        ("policy.deny", None, "admin", "policy_denied"),
    ]
    entries = {(e["op"], e["job"], e["outcome"]): e for e in _entries(api)}
    assert entries["job.input", c, "ok"]["detail"] == {"bytes": 7, "eof": False}
    assert entries["job.finish", d, "failed"]["detail"]["exit_code"] == 3
    assert entries["job.signal", c, "ok"]["detail"] == {"signal": "SIGCONT"}
    assert entries["auth.fail", None, "unauthorized"]["detail"]["path"] == "/jobs"
    ledger = (server.data_dir / "trace.jsonl").read_bytes()
    assert b"secret" not in ledger and b"not-a-token" not in ledger  # sizes, never secrets


def test_trace_filters_and_refuses_bad_parameters(api):
    a = api.post("/jobs", json={"argv": ["true"]}).json()
    b = api.post("/jobs", json={"argv": ["true"]}).json()
    wait_job(api, a["id"])
    wait_job(api, b["id"])
    wait_for(lambda: len(_entries(api, op="job.finish")) == 2)
    assert [e["job"] for e in _entries(api, op="job.create")] == [b["id"], a["id"]]
    assert {e["op"] for e in _entries(api, job=a["id"])} == {
        "job.create",
        "job.start",
        "job.finish",
    }
    both = _entries(api, op=["job.create", "job.finish"])
    assert {e["op"] for e in both} == {"job.create", "job.finish"} and len(both) == 4
    assert _entries(api, type="job.finish") == _entries(api, op="job.finish")  # DESIGN.md's name
    newest = _entries(api, limit=2)
    assert len(newest) == 2 and newest[0]["seq"] > newest[1]["seq"]
    cursor = newest[1]["seq"]
    assert [e["seq"] for e in _entries(api, after=cursor)] == [newest[0]["seq"]]
    for params in ({"op": "job.explode"}, {"type": "nope"}, {"limit": "0"}, {"after": "-1"}):
        r = api.get("/trace", params=params)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", params


async def test_the_firehose_carries_trace_events_beside_job_events(aapi):
    parser = SSEParser()
    seen: list = []
    async with aapi.stream("GET", "/stream") as resp:
        chunks = resp.aiter_raw()
        await anext(chunks)  # connected
        job = (await aapi.post("/jobs", json={"argv": ["true"]})).json()
        async for chunk in chunks:
            seen += parser.feed(chunk)
            traced = [orjson.loads(m.data) for m in seen if m.event == "trace"]
            if [e["op"] for e in traced] == ["job.create", "job.start", "job.finish"]:
                break
    assert all(e["job"] == job["id"] for e in traced)
    assert all(m.id is None for m in seen if m.event == "trace")  # live only: no resume point
    assert any(m.event == "complete" and m.id for m in seen)
