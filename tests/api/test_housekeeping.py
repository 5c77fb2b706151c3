"""POST /prune, the server's background retention, and the disk use /status reports."""

from __future__ import annotations

import httpx

from tests.conftest import wait_job
from tests.helpers import wait_for


def _start(api: httpx.Client, command: str, **job: object) -> dict:
    r = api.post("/jobs", json={"command": command, **job})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _ids(api: httpx.Client) -> set[str]:
    return {j["id"] for j in api.get("/jobs", params={"limit": 1000}).json()["jobs"]}


def test_the_server_applies_retention_by_itself_and_spares_the_unfinished(server_factory, data_dir):
    srv = server_factory(
        data_dir, extra=["--retention-max-jobs", "2", "--retention-interval-seconds", "0.2"]
    ).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        running = _start(api, "sleep 60")
        done = []
        for i in range(5):
            job = _start(api, f"echo {i}", name=f"n{i}")
            wait_job(api, job["id"])
            done.append(job["id"])
        wait_for(lambda: _ids(api) == {running["id"], *done[-2:]})
        assert api.get(f"/jobs/{running['id']}").json()["status"] == "running"
        # and the ledger says who deleted them
        deletes = wait_for(
            lambda: (
                e
                if len(e := api.get("/trace", params={"type": "job.delete"}).json()["entries"]) >= 3
                else None
            )
        )
        assert {(e["who"], e["job"]) for e in deletes} == {("retention", j) for j in done[:3]}
        api.post(f"/jobs/{running['id']}/cancel")
    log = srv.output()
    for job_id in done[:3]:
        assert log.count(f"retention deleted job {job_id}") == 1, log
        assert not list((data_dir / "logs").glob(f"{job_id}.*"))
    assert f"deleted job {running['id']}" not in log


def test_prune_by_rules_dry_run_and_bad_input(server, api):
    old = [_start(api, f"echo {i}") for i in range(3)]
    for job in old:
        wait_job(api, job["id"])
    live = _start(api, "sleep 60")
    r = api.post("/prune", json={"older_than": 0, "dry_run": True})
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": [j["id"] for j in old], "bytes": 6, "dry_run": True}
    assert _ids(api) == {live["id"], *(j["id"] for j in old)}
    r = api.post("/prune", json={"max_jobs": 1})
    assert r.json() == {"deleted": [j["id"] for j in old[:2]], "bytes": 4, "dry_run": False}
    assert _ids(api) == {live["id"], old[2]["id"]}
    # no rules, and the server has no retention settings: nothing goes
    assert api.post("/prune", json={}).json()["deleted"] == []
    assert api.post("/prune", json={"max_jobs": -1}).status_code == 422
    assert api.post("/prune", json={"older_than": "7d"}).status_code == 422
    assert api.post("/prune", json={"keep": 3}).status_code == 422
    assert api.post("/prune").status_code == 400
    assert api.get(f"/jobs/{live['id']}").json()["status"] == "running"
    api.post(f"/jobs/{live['id']}/cancel")


def test_status_shows_the_disk_use_and_a_prune_frees_it(server, api, data_dir):
    job = _start(api, "head -c 300000 /dev/zero")
    wait_job(api, job["id"])
    ledger = data_dir / "trace.jsonl"
    wait_for(lambda: b"job.finish" in ledger.read_bytes())
    disk = api.get("/status").json()["disk"]
    traced = ledger.stat().st_size
    assert set(disk) == {"data_dir_bytes", "db_bytes", "db_free_bytes", "wal_bytes", "output_bytes"}
    assert disk["output_bytes"] == 300_000
    assert disk["db_bytes"] == (data_dir / "jobcast.db").stat().st_size
    assert disk["data_dir_bytes"] > disk["output_bytes"] + disk["db_bytes"]
    assert api.post("/prune", json={"older_than": 0}).json()["bytes"] == 300_000
    after = api.get("/status").json()["disk"]
    assert after["output_bytes"] == 0
    # The ledger grew by the prune's own entry (job.delete), all else shrank.
    assert after["data_dir_bytes"] - after["wal_bytes"] - ledger.stat().st_size <= (
        disk["data_dir_bytes"] - disk["wal_bytes"] - traced - 300_000
    )
