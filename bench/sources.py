"""A watched file appended at a fixed rate: jobcast's follower against `tail -F`, in one run.

    .venv/bin/python bench/sources.py [--mbps 50] [--duration 5] [--runs 3] [--via log|sse]

A real `jobcast serve --watch DIR/*.typescript` (pinned to CPU 0) tails one file that
`bench/producer.py lines` appends 100-byte timestamped lines to at `--mbps` MB/s (10^6 bytes);
the producer, `tail -F -c +1 FILE` and this driver share CPU 1. Two followers read at once: a
jobcast client (`/jobs/NAME/log?follow=1`, raw bytes, or `/jobs/NAME/events`, SSE) and `tail -F`.
Lag = receipt time - the write time stamped in the newest complete line received, per read
(so per batch, not per line); throughput = bytes / (last byte received - first write). Every
line's number is checked against its offset: nothing lost, repeated or out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from jobcast.protocol import SSEParser

sys.path.insert(0, str(Path(__file__).parent))
from common import LINE_BYTES, parse_line

BENCH = Path(__file__).parent
PY = sys.executable
SERVER_CPU, CLIENT_CPU = "0", "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ticks(pid: int) -> float:
    """utime + stime of `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Reader:
    """Bytes of the file as one follower receives them: checked, with the lag of each read."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.got = 0
        self.lags: list[float] = []
        self.last_at = 0.0
        self._partial = b""
        self.done = asyncio.Event()

    def feed(self, data: bytes) -> None:
        now = time.time()
        start = self.got - len(self._partial)
        buf = self._partial + data
        self.got += len(data)
        end = buf.rfind(b"\n") + 1
        if end:
            line = buf[end - LINE_BYTES : end - 1].decode()
            seq, ts = parse_line(line)
            if seq != (start + end) // LINE_BYTES - 1:
                raise AssertionError(f"{self.name}: line {seq} at offset {start + end}")
            self.lags.append(now - ts)
        self._partial = buf[end:]
        self.last_at = now
        if self.got >= self.total:
            self.done.set()


async def follow_jobcast(url: str, headers: dict[str, str], via: str, reader: Reader) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        if via == "log":
            async with http.get(f"{url}/jobs/BENCH/log", params={"follow": "1"}) as r:
                async for chunk in r.content.iter_any():
                    reader.feed(chunk)
                    if reader.done.is_set():
                        return
        else:
            parser = SSEParser()  # searches only each new chunk: O(size) for large events
            async with http.get(f"{url}/jobs/BENCH/events") as r:
                async for chunk in r.content.iter_any():
                    for msg in parser.feed(chunk):
                        ev = orjson.loads(msg.data)
                        if ev["type"] == "stdout":
                            reader.feed(ev["data"]["text"].encode())
                    if reader.done.is_set():
                        return


async def follow_tail(path: Path, reader: Reader) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        "taskset", "-c", CLIENT_CPU, "tail", "-F", "-c", "+1", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None

    async def pump() -> None:
        assert proc.stdout is not None
        while not reader.done.is_set():
            data = await proc.stdout.read(1 << 20)
            if not data:
                return
            reader.feed(data)

    asyncio.get_running_loop().create_task(pump())
    return proc


async def one_run(mbps: float, duration: float, via: str) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="jobcast-bench-sources-"))
    streams = tmp / "streams"
    streams.mkdir()
    path = streams / "BENCH.typescript"
    path.touch()
    port = _free_port()
    log = (tmp / "server.log").open("wb")
    server = await asyncio.create_subprocess_exec(
        "taskset", "-c", SERVER_CPU, PY, "-m", "jobcast", "serve", "--port", str(port),
        "--data-dir", str(tmp / "data"), "--watch", f"{streams}/*.typescript",
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    rate = mbps * 1e6 / LINE_BYTES
    total = round(rate * duration) * LINE_BYTES
    try:
        token = None
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    token = (tmp / "data" / "token").read_text().strip()
                    h = {"Authorization": f"Bearer {token}"}
                    async with http.get(f"{url}/jobs/BENCH", headers=h) as r:
                        if r.status == 200:
                            break
                except (OSError, aiohttp.ClientError):
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the server did not start following the file")
        headers = {"Authorization": f"Bearer {token}"}
        ours, theirs = Reader(f"jobcast {via}", total), Reader("tail -F", total)
        follower = asyncio.create_task(follow_jobcast(url, headers, via, ours))
        tail = await follow_tail(path, theirs)
        await asyncio.sleep(0.5)  # both connected and waiting at the (empty) end
        cpu0 = _ticks(server.pid)
        with path.open("ab") as out:
            started = time.time()
            producer = await asyncio.create_subprocess_exec(
                "taskset", "-c", CLIENT_CPU, PY, str(BENCH / "producer.py"), "lines",
                "--rate", str(rate), "--duration", str(duration),
                stdout=out,
            )  # fmt: skip
            await asyncio.wait_for(
                asyncio.gather(ours.done.wait(), theirs.done.wait()), duration * 6 + 30
            )
            await producer.wait()
        cpu = _ticks(server.pid) - cpu0
        follower.cancel()
        tail.send_signal(signal.SIGTERM)
        await tail.wait()
        written = time.time() - started
        result: dict[str, object] = {"server_cpu_s": cpu, "wall_s": written}
        for r in (ours, theirs):
            lags = sorted(r.lags)
            result[r.name] = {
                "mb_per_s": r.got / (r.last_at - started) / 1e6,
                "lag_p50_ms": lags[len(lags) // 2] * 1000,
                "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000,
                "lag_max_ms": lags[-1] * 1000,
                "reads": len(lags),
            }
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 30)
        log.close()
        await asyncio.to_thread(shutil.rmtree, tmp, True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mbps", type=float, default=50.0, help="MB/s appended (10^6 bytes)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of appending")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--via", choices=["log", "sse"], default="log")
    args = parser.parse_args()
    import uvloop

    runs = [uvloop.run(one_run(args.mbps, args.duration, args.via)) for _ in range(args.runs)]
    for i, r in enumerate(runs, 1):
        print(f"run {i}: {orjson.dumps(r).decode()}")
    for name in (f"jobcast {args.via}", "tail -F"):
        print(f"{name}:")
        for key in ("mb_per_s", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"):
            vals = [r[name][key] for r in runs]  # type: ignore[index]
            print(
                f"  {key}: median {statistics.median(vals):.1f} "
                f"(min {min(vals):.1f}, max {max(vals):.1f})"
            )
    cpu = [float(r["server_cpu_s"]) / float(r["wall_s"]) for r in runs]  # type: ignore[arg-type]
    print(f"server CPU: median {statistics.median(cpu) * 100:.0f}% of a core while appending")


if __name__ == "__main__":
    main()
