"""/status and /stats."""

from __future__ import annotations


def test_stats_reports_loop_lag_over_a_window_the_caller_picks(api):
    lag = api.get("/stats", params={"lag_seconds": 1}).json()["loop_lag_ms"]
    assert set(lag) == {"p50", "p99", "max"} and 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    for bad in ("0", "61", "x"):
        resp = api.get("/stats", params={"lag_seconds": bad})
        assert resp.status_code == 400 and "lag_seconds" in resp.json()["error"]["message"]
