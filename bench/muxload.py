"""The load generator of the /ws scenarios: connections that each follow every job over `/ws`.

    muxload.py follow --port P [--token T] --connections C --jobs N --lines L --timeout S

Each connection subscribes to `"*"` before the jobs exist, so it finds every job as it is
created. It prints `ready` once all are subscribed, waits for `go <t>` on stdin, and counts,
for every job, the lines `I TS` the job prints (bench/run.py: `mux_producer`): each must come
once and in order (I = 1..L), and its latency is the receipt time minus TS, the producer's
clock at the write. `done <t>` once every connection has every job's `complete` (or at the
timeout), then one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from typing import Any

import orjson
import uvloop
import websockets
from common import percentile, raise_nofile

#: latency histogram buckets, in ms
QUANTUM_MS = 0.1


class Follower:
    """One /ws connection's count of every job's lines."""

    def __init__(self, jobs: int, lines: int, hist: dict[int, int]) -> None:
        self.jobs, self.lines = jobs, lines
        self.hist = hist
        self.next: dict[str, int] = {}
        self.partial: dict[str, str] = {}
        self.complete = 0
        self.received = self.lost = self.duplicated = self.malformed = 0
        self.seq: dict[str, int] = {}
        self.seq_errors = 0
        self.done = asyncio.get_running_loop().create_future()

    def message(self, raw: str | bytes, now: float) -> None:
        msg = orjson.loads(raw)
        if msg.get("type") != "event":
            return
        job = msg["job"]
        if msg["seq"] != self.seq.get(job, 0) + 1:
            self.seq_errors += 1
        self.seq[job] = msg["seq"]
        kind = msg["event"]
        if kind == "stdout":
            text = self.partial.pop(job, "") + msg["data"]["text"]
            *whole, rest = text.split("\n")
            if rest:
                self.partial[job] = rest
            for line in whole:
                self.line(job, line, now)
        elif kind == "complete":
            self.complete += 1
            want = self.lines + 1
            got = self.next.get(job, 1)
            self.lost += max(0, want - got)
            if self.complete >= self.jobs and not self.done.done():
                self.done.set_result(now)

    def line(self, job: str, line: str, now: float) -> None:
        try:
            i, ts = line.split(" ")
            n, t = int(i), float(ts)
        except ValueError:
            self.malformed += 1
            return
        want = self.next.get(job, 1)
        if n < want:
            self.duplicated += 1
            return
        self.lost += n - want
        self.next[job] = n + 1
        self.received += 1
        bucket = int((now - t) * 1000 / QUANTUM_MS)
        self.hist[bucket] = self.hist.get(bucket, 0) + 1


async def follow(url: str, headers: dict[str, str], f: Follower, subscribed: asyncio.Event) -> None:
    async with websockets.connect(url, additional_headers=headers, max_size=1 << 24) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "jobs": ["*"]}).decode())
        async for raw in ws:
            if not subscribed.is_set() and b'"type":"subscribed"' in (
                raw if isinstance(raw, bytes) else raw.encode()
            ):
                subscribed.set()
            f.message(raw, time.time())
            if f.done.done():
                return


async def main(a: argparse.Namespace) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{a.port}/ws"
    headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
    hist: dict[int, int] = {}
    followers = [Follower(a.jobs, a.lines, hist) for _ in range(a.connections)]
    ready = [asyncio.Event() for _ in followers]
    tasks = [
        asyncio.create_task(follow(url, headers, f, r))
        for f, r in zip(followers, ready, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 120)
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t_go = float(line.split()[1])
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    done, _ = await asyncio.wait(tasks, timeout=a.timeout)
    t_end = time.time()
    print(f"done {t_end:.6f}", flush=True)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for t in tasks:
        t.cancel()
    expected = a.connections * a.jobs * a.lines
    received = sum(f.received for f in followers)
    p = {q: (percentile(hist, q) or 0) * QUANTUM_MS for q in (50, 99)}
    return {
        "t_go": t_go,
        "t_end": t_end,
        "expected": expected,
        "received": received,
        "lost": sum(f.lost for f in followers),
        "duplicated": sum(f.duplicated for f in followers),
        "malformed": sum(f.malformed for f in followers),
        "seq_errors": sum(f.seq_errors for f in followers),
        "incomplete_connections": sum(1 for f in followers if not f.done.done()),
        "finished_tasks": len(done),
        "p50_ms": p[50],
        "p99_ms": p[99],
        "max_ms": max(hist, default=0) * QUANTUM_MS,
        "client_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["follow"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120.0)
    return parser.parse_args()


if __name__ == "__main__":
    raise_nofile()
    args = parse_args()
    result = uvloop.run(main(args))
    print(orjson.dumps(result).decode(), flush=True)
