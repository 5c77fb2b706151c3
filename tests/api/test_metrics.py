"""GET /metrics: the Prometheus text format (prometheus_client's parser, promtool), counters that
move as jobs run and clients connect, and who may scrape."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess, wait_job
from tests.helpers import async_wait_for, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str) -> Samples:
    """Every sample of the exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: scripts/tools.sh installs it"
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


async def test_metrics_parse_lint_and_move_as_a_job_runs_and_a_client_follows(
    server: ServerProcess, aapi: httpx.AsyncClient
) -> None:
    first = await aapi.get("/metrics")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
    promtool_check(first.text)
    before = scrape(first.text)
    for transport in ("sse", "ws", "log", "stream"):
        assert value(before, "jobcast_clients", transport=transport) == 0
    assert value(before, "jobcast_jobs_running") == 0

    job = (await aapi.post("/jobs", json={"argv": ["cat"], "stdin": True})).json()
    seen: list[str] = []

    async def follow() -> None:
        async with aapi.stream("GET", f"/jobs/{job['id']}/events") as r:
            async for line in r.aiter_lines():
                seen.append(line)

    async def tail() -> None:
        async with aapi.stream("GET", f"/jobs/{job['id']}/log", params={"follow": 1}) as r:
            async for chunk in r.aiter_bytes():
                seen.append(chunk.decode())

    followers = asyncio.gather(follow(), tail())

    async def connected() -> Samples | None:
        now = scrape((await aapi.get("/metrics")).text)
        running = value(now, "jobcast_jobs", status="running") == 1
        sse, log = (value(now, "jobcast_clients", transport=t) for t in ("sse", "log"))
        return now if running and sse == log == 1 else None

    during = await async_wait_for(connected)
    assert value(during, "jobcast_jobs_running") == 1
    assert value(during, "jobcast_jobs", status="running") == 1
    assert (
        value(during, "jobcast_jobs_started_total")
        == value(before, "jobcast_jobs_started_total") + 1
    )
    await aapi.post(f"/jobs/{job['id']}/input", json={"data": "hello metrics\n", "eof": True})
    await asyncio.wait_for(followers, 30)
    assert sum("hello metrics" in line for line in seen) == 2

    async def finished() -> tuple[str, Samples] | None:
        text = (await aapi.get("/metrics")).text
        now = scrape(text)
        done = value(now, "jobcast_jobs_finished_total", status="succeeded")
        idle = all(value(now, "jobcast_clients", transport=t) == 0 for t in ("sse", "log"))
        return (text, now) if done == 1 and idle else None

    text, after = await async_wait_for(finished)
    promtool_check(text)
    assert value(after, "jobcast_jobs_running") == 0
    assert value(after, "jobcast_jobs", status="succeeded") == 1
    assert value(after, "jobcast_job_duration_seconds_count") == 1
    assert value(after, "jobcast_events_sent_total") > value(before, "jobcast_events_sent_total")
    assert value(after, "jobcast_sent_bytes_total") > value(before, "jobcast_sent_bytes_total")
    assert value(after, "jobcast_output_bytes_total") >= len("hello metrics\n")
    assert value(after, "jobcast_event_log_append_seconds_count") > value(
        before, "jobcast_event_log_append_seconds_count"
    )
    assert value(after, "jobcast_event_loop_lag_seconds_count") > 0
    assert value(after, "jobcast_store_bytes", part="db") > 0
    assert value(after, "jobcast_store_bytes", part="output") >= 0  # walked every 5 s at most
    for name in ("jobcast_stalled_disconnects_total", "jobcast_extraction_matches_total"):
        assert value(after, name) == 0
    assert value(after, "jobcast_output_dropped_bytes_total") == 0


def test_dropped_bytes_are_counted_while_the_job_that_drops_them_runs(api: httpx.Client) -> None:
    # 5000 bytes past a cap of 1000, then the job waits on its stdin: it runs until told
    body = {"command": "head -c 5000 /dev/zero; cat", "stdin": True, "max_output_bytes": 1000}
    job = api.post("/jobs", json=body).json()

    def dropped() -> float:
        return value(scrape(api.get("/metrics").text), "jobcast_output_dropped_bytes_total")

    assert wait_for(lambda: dropped() == 4000 or None, timeout=30)
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"
    api.post(f"/jobs/{job['id']}/input", json={"data": "", "eof": True})
    ended = wait_job(api, job["id"])
    assert (ended["status"], ended["dropped_bytes"]) == ("succeeded", 4000)
    assert dropped() == 4000  # handed from the running job to the ended ones, counted once


def test_extraction_matches_are_counted(api: httpx.Client) -> None:
    extract = [{"name": "version", "pattern": r"v(\d+)"}]
    api.post("/jobs", json={"command": "echo v1; echo none; echo v2", "extract": extract})

    def matches() -> float:
        return value(scrape(api.get("/metrics").text), "jobcast_extraction_matches_total")

    assert wait_for(lambda: matches() == 2 or None, timeout=30)


def test_a_metrics_token_scrapes_and_does_nothing_else(
    server_factory: type[ServerProcess], data_dir: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        '[[tokens]]\nname = "prometheus"\ntoken = "scrape-0123456789"\nscopes = ["metrics"]\n'
        '[[tokens]]\nname = "viewer"\ntoken = "view-0123456789"\nscopes = ["read"]\n'
    )
    s = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    with httpx.Client(base_url=s.url, timeout=30) as c:
        scraper = {"Authorization": "Bearer scrape-0123456789"}
        assert c.get("/metrics", headers=scraper).status_code == 200
        for path in ("/jobs", "/stats"):
            r = c.get(path, headers=scraper)
            assert r.status_code == 403 and "`read` scope" in r.json()["error"]["message"]
        assert (
            c.get("/metrics", headers={"Authorization": "Bearer view-0123456789"}).status_code
            == 200
        )
        assert c.get("/metrics").status_code == 401
