"""/status and /stats."""

from __future__ import annotations

import asyncio

from tests.helpers import async_wait_for


def test_stats_reports_loop_lag_over_a_window_the_caller_picks(api):
    lag = api.get("/stats", params={"lag_seconds": 1}).json()["loop_lag_ms"]
    assert set(lag) == {"p50", "p99", "max"} and 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    for bad in ("0", "61", "x"):
        resp = api.get("/stats", params={"lag_seconds": bad})
        assert resp.status_code == 400 and "lag_seconds" in resp.json()["error"]["message"]


async def test_stats_give_each_followed_job_its_clients_and_rates(aapi):
    job = (await aapi.post("/jobs", json={"argv": ["cat"], "stdin": True})).json()

    async def follow() -> None:
        async with aapi.stream("GET", f"/jobs/{job['id']}/events") as r:
            async for _ in r.aiter_lines():
                pass

    follower = asyncio.create_task(follow())

    async def flowing() -> dict | None:
        await aapi.post(f"/jobs/{job['id']}/input", json={"data": "tick\n"})
        stats = (await aapi.get("/stats")).json()
        mine = stats["jobs"].get(job["id"])
        return stats if mine and mine["events_per_second"] > 0 else None

    stats = await async_wait_for(flowing, within=30, interval=0.2)
    assert stats["jobs"][job["id"]]["clients"] == stats["per_job"][job["id"]] == 1
    assert stats["jobs"][job["id"]]["bytes_per_second"] > 0
    assert 0 < stats["rates"]["window_seconds"] <= 11
    assert stats["rates"]["events_per_second"] > 0
    await aapi.post(f"/jobs/{job['id']}/input", json={"data": "", "eof": True})
    await asyncio.wait_for(follower, 30)
