"""Disk space before and after pruning many finished jobs, and how long the prune takes.

    .venv/bin/python bench/prune.py [--jobs 10000] [--events 20] [--line-bytes 100]

Fills a fresh data dir with `--jobs` finished jobs through the SQLite store itself (each with
`--events` stdout events of `--line-bytes` bytes: spawning 10,000 real processes would measure
fork, not the prune), starts a real server on it, and times `POST /prune {"older_than": 0}` (what
`jobcast rm --finished` sends). Prints a Markdown table: the data dir, the SQLite file and its
free pages, the WAL and the output files before, right after the prune, after the next
checkpoint, and after the server stopped; the event loop's lag over the prune.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from jobcast.datadir import DB_NAME  # noqa: E402
from jobcast.models import EventType, JobSpec, JobStatus  # noqa: E402
from jobcast.store.sqlite import SQLiteStore  # noqa: E402


async def fill(data_dir: Path, jobs: int, events: int, line: bytes) -> None:
    store = SQLiteStore(data_dir)
    await store.open()

    async def one() -> None:
        job = await store.create_job(JobSpec(argv=["true"]))
        await store.set_status(job.id, JobStatus.RUNNING, started_at=time.time())
        for _ in range(events):
            await store.append(job.id, EventType.STDOUT, raw=line)
        await store.set_status(job.id, JobStatus.SUCCEEDED, exit_code=0, finished_at=time.time())

    try:
        for start in range(0, jobs, 200):  # 200 at a time: their writes commit together
            await asyncio.gather(*(one() for _ in range(min(200, jobs - start))))
    finally:
        await store.close()


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def on_disk(data_dir: Path) -> dict[str, int]:
    """What the server would report, read from the files of a stopped server."""
    import sqlite3

    db = data_dir / DB_NAME
    with sqlite3.connect(db) as conn:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        free *= conn.execute("PRAGMA page_size").fetchone()[0]
    wal = db.with_name(db.name + "-wal")
    return {
        "data_dir_bytes": tree_bytes(data_dir),
        "db_bytes": db.stat().st_size,
        "db_free_bytes": free,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "output_bytes": tree_bytes(data_dir / "logs"),
    }


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "jobcast", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--log-level", "warning"]
    # Auth off (on loopback only): the figures are the store's, not the token check's.
    env = {**os.environ, "PYTHONPATH": "src", "JOBCAST_AUTH": "none"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/status", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=20, help="stdout events per job")
    ap.add_argument("--line-bytes", type=int, default=100)
    ap.add_argument("--port", type=int, default=18765)
    args = ap.parse_args()
    line = b"x" * (args.line_bytes - 1) + b"\n"
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="jobcast-bench-prune-") as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        asyncio.run(fill(data_dir, args.jobs, args.events, line))
        fill_s = time.perf_counter() - t0
        rows.append(("filled (server stopped)", on_disk(data_dir)))
        proc = serve(data_dir, args.port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=None) as api:
                rows.append(("server started", api.get("/status").json()["disk"]))
                lag_before = api.get("/stats").json()["loop_lag_ms"]
                t0 = time.perf_counter()
                done = api.post("/prune", json={"older_than": 0}).json()
                prune_s = time.perf_counter() - t0
                lag = api.get("/stats").json()["loop_lag_ms"]
                rows.append(("right after the prune", api.get("/status").json()["disk"]))
                time.sleep(2.5)  # the writer checkpoints every second
                rows.append(("after a checkpoint", api.get("/status").json()["disk"]))
        finally:
            proc.terminate()
            proc.wait(60)
        rows.append(("server stopped", on_disk(data_dir)))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; commit {commit}"
    )
    print(
        f"command: .venv/bin/python bench/prune.py --jobs {args.jobs} --events {args.events} "
        f"--line-bytes {args.line_bytes}"
    )
    print(
        f"filled {args.jobs} jobs in {fill_s:.1f} s; pruned {len(done['deleted'])} jobs "
        f"({mib(done['bytes'])} of output) in {prune_s:.2f} s "
        f"({len(done['deleted']) / prune_s:,.0f} jobs/s); loop lag over the last minute "
        f"p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms "
        f"(before the prune, start-up included: max {lag_before['max']} ms)\n"
    )
    cols = ("data_dir_bytes", "db_bytes", "db_free_bytes", "wal_bytes", "output_bytes")
    print("| when | data dir | SQLite file | of it free | WAL | output files |")
    print("|---|---|---|---|---|---|")
    for when, disk in rows:
        print(f"| {when} | " + " | ".join(mib(disk[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
