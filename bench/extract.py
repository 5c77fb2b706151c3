"""Does a pathological extractor delay another job's output? The delay of a light job's lines
(written at 100 lines/s, each stamped with its write time) at an SSE follower, while a heavy job
prints 100 KB lines of `a` ending in `b` under the extractor `(a+)+$` (which a backtracking engine
would take forever on), against the same light job alone. One fresh server, auth off.

    .venv/bin/python bench/extract.py [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

LIGHT = (
    "import sys, time\n"
    "end = time.time() + float(sys.argv[1])\n"
    "while time.time() < end:\n"
    "    print(f'{time.time():.6f}', flush=True); time.sleep(0.01)\n"
)
HEAVY = (
    "import sys, time\n"
    "line = 'a' * 100_000 + 'b\\n'\n"
    "end = time.time() + float(sys.argv[1])\n"
    "while time.time() < end:\n"
    "    sys.stdout.write(line * 10); sys.stdout.flush()\n"
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _delays(client: httpx.AsyncClient, job_id: str) -> list[float]:
    """Seconds from each light line's write to its arrival here."""
    out: list[float] = []
    buf = ""
    async with client.stream("GET", f"/jobs/{job_id}/events?view=lines") as resp:
        async for chunk in resp.aiter_text():
            now = time.time()
            buf += chunk
            *frames, buf = buf.split("\n\n")
            for frame in frames:
                data = next((x[6:] for x in frame.splitlines() if x.startswith("data: ")), None)
                if data and '"line_no"' in data and '"type"' not in data:
                    out.append(now - float(json.loads(data)["line"]))
                elif data and '"complete"' in data:
                    return out
    return out


async def _run(url: str, seconds: float, heavy: bool) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        if heavy:
            spec = {
                "argv": [sys.executable, "-c", HEAVY, str(seconds + 1)],
                "extract": [{"name": "evil", "pattern": "(a+)+$"}],
            }
            (await client.post("/jobs", json=spec)).raise_for_status()
        r = await client.post("/jobs", json={"argv": [sys.executable, "-c", LIGHT, str(seconds)]})
        r.raise_for_status()
        delays = sorted(await _delays(client, r.json()["id"]))
    return {
        "lines": len(delays),
        "p50_ms": delays[len(delays) // 2] * 1000,
        "p99_ms": delays[int(len(delays) * 0.99)] * 1000,
        "max_ms": delays[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="jobcast-bench-extract-"))
    port = _port()
    env = {**os.environ, "JOBCAST_AUTH": "none"}
    cmd = [sys.executable, "-m", "jobcast", "serve", "--port", str(port), "--data-dir", str(data)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/status", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        results: dict[str, list[dict[str, float]]] = {"alone": [], "beside (a+)+$": []}
        for _ in range(a.runs):
            for name, heavy in (("alone", False), ("beside (a+)+$", True)):
                results[name].append(asyncio.run(_run(url, a.seconds, heavy)))
        print("| light job's lines | lines | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for name, runs in results.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"| {name} (median of {a.runs}) | {med['lines']:.0f} | {med['p50_ms']:.1f} "
                f"| {med['p99_ms']:.1f} | {med['max_ms']:.1f} |"
            )
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
