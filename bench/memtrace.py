"""Where the memory of an idle follower goes: tracemalloc in a real server, by file and by line.

    .venv/bin/python bench/memtrace.py --kind sse --clients 1000

Starts `jobcast serve` (auth off) in a child process that takes a tracemalloc snapshot on
SIGUSR1, connects 20 warm-up followers of a sleeping job (bench/loadgen.py idle), snapshots
(tracing starts there, so start-up and the warm-up are not counted), connects `--clients` more,
snapshots again, and prints the difference per client: the Python heap each follower holds, by
file and by line, beside the server's RSS growth per client. tracemalloc's own bookkeeping
inflates that RSS figure; `bench/run.py memory` gives the real one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: run in the server's process: snapshot to argv[3]<n>.bin on each SIGUSR1 (tracing from the first)
_SERVER = """
import gc, signal, sys, tracemalloc
from jobcast.api.app import run_server
from jobcast.config import Settings
taken = [0]
def snapshot(*_):
    gc.collect()
    if not tracemalloc.is_tracing():
        tracemalloc.start(8)
    tracemalloc.take_snapshot().dump(f"{sys.argv[3]}{taken[0]}.bin")
    taken[0] += 1
    print("snapshot", flush=True)
signal.signal(signal.SIGUSR1, snapshot)
run_server(Settings(port=int(sys.argv[1]), data_dir=sys.argv[2], auth="none"))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _wait_for(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"process ended before printing {word!r}")
        if word in line:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["sse", "ws", "log"], default="sse")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--top", type=int, default=20, help="lines to print of each table")
    a = ap.parse_args()
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="jobcast-memtrace-"))
    snaps = str(work / "snap")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port), str(work / "data"), snaps],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    gens: list[subprocess.Popen[str]] = []
    try:
        _wait_for(server, "serving on")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        job = api.post("/jobs", json={"argv": ["sleep", "3600"]}).json()

        def followers(n: int) -> None:
            gen = subprocess.Popen(
                [sys.executable, str(HERE / "loadgen.py"), "idle", "--port", str(port)]
                + ["--job", job["id"], "--kind", a.kind, "--clients", str(n)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            gens.append(gen)
            _wait_for(gen, "ready")
            time.sleep(1.0)

        def snapshot() -> tracemalloc.Snapshot:
            server.send_signal(signal.SIGUSR1)
            _wait_for(server, "snapshot")
            return tracemalloc.Snapshot.load(f"{snaps}{len(taken)}.bin")

        taken: list[tracemalloc.Snapshot] = []
        followers(20)
        taken.append(snapshot())
        rss0 = _rss_kib(server.pid)
        followers(a.clients)
        rss1 = _rss_kib(server.pid)
        taken.append(snapshot())
    finally:
        for g in gens:
            g.kill()
        server.terminate()
        server.wait(30)
    n = a.clients
    print(f"{a.kind}: {n} idle followers; RSS +{(rss1 - rss0) * 1.024 / n:.1f} KB each (traced)")
    for key in ("filename", "lineno"):
        diff = taken[1].compare_to(taken[0], key)
        total = sum(d.size_diff for d in diff)
        print(f"\nPython heap per follower by {key}: {total / n:,.0f} B in all")
        for d in diff[: a.top]:
            frame = d.traceback[0]
            where = frame.filename.split("site-packages/")[-1].split("/src/")[-1]
            if key == "lineno":
                where += f":{frame.lineno}"
            print(f"{d.size_diff / n:8,.0f} B {d.count_diff / n:6.1f} objects  {where}")


if __name__ == "__main__":
    main()
