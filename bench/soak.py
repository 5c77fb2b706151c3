"""Endurance: every byte exactly once through cut connections, nothing left behind by 10,000
connects and disconnects, a flat RSS under mixed load. Bounded in time; anyone can run it.

    python bench/soak.py [cuts|cycles|mixed ...] [--short] [--json]

- `cuts`: followers of a 1,000,000-line job (SSE, WebSocket, `/log`, in turn) through a TCP proxy
  of this file's own that cuts connections at random, mid-frame included (1,000 cuts); each
  follower resumes by `Last-Event-ID`, `after` or `Range` and must end with the job's output
  exactly once (its hash), every event seq and byte offset following on.
- `cycles`: connect/disconnect cycles of the three kinds, clean and abrupt (RST): the server's
  open file descriptors, tasks and RSS come back to their baseline (within 10%); `cycles-ws`
  the same with WebSockets only.
- `mixed`: jobs starting, ending and cancelled, followers coming and going, one client that
  never reads (the server must drop it): RSS flat after warm-up (within 5%), no error in the
  server's log, every follower's copy of every job byte-exact.

The server is a real `jobcast serve` with auth on, on a free port and a fresh data dir. `--short`
is the minute-or-less version that `make test` runs (tests/test_soak.py). Exit status 1 if a check
fails; each part prints a line of figures (JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from jobcast.protocol import SSEParser

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """`jobcast serve` in a fresh data dir, auth on (its generated token), on a free port."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.port = _free_port()
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
        env.update({f"JOBCAST_{k.upper()}": v for k, v in settings.items()})
        argv = [sys.executable, "-m", "jobcast", "serve", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*argv, "--data-dir", str(data_dir)], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.url = f"http://{HOST}:{self.port}"
        self.token = ""

    async def start(self) -> Server:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the server exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(OSError, aiohttp.ClientError):
                    async with http.get(f"{self.url}/status") as r:
                        if r.status == 200 and (self.data_dir / "token").exists():
                            self.token = (self.data_dir / "token").read_text().strip()
                            return self
                await asyncio.sleep(0.05)
        raise SystemExit("the server did not start within 30 s")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def errors_logged(self) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [ln for ln in text.splitlines() if " ERROR " in ln or "Traceback" in ln]


async def _api(http: aiohttp.ClientSession, srv: Server, method: str, path: str, **kw: Any) -> Any:
    if method == "POST" and "json" not in kw:
        kw["json"] = {}  # a POST is JSON or nothing (the server refuses other types)
    async with http.request(method, srv.url + path, headers=srv.headers, **kw) as r:
        body = await r.json()
        if r.status >= 300:
            raise SystemExit(f"{method} {path}: {r.status} {body}")
        return body


def _lines_job(n: int, burst: int, pause: float) -> tuple[dict[str, Any], bytes]:
    """A job printing the numbers 0..n-1, a line each, `burst` at a time; and what it prints."""
    code = (
        "import sys, time\n"
        f"for i in range(0, {n}, {burst}):\n"
        f"    sys.stdout.write(''.join(f'{{j}}\\n' for j in range(i, min({n}, i + {burst}))))\n"
        "    sys.stdout.flush()\n"
        f"    time.sleep({pause})\n"
    )
    expected = b"".join(b"%d\n" % j for j in range(n))
    return {"argv": [sys.executable, "-c", code]}, expected


# -- followers that resume -----------------------------------------------------------------------


@dataclass
class Copy:
    """What one follower got: the bytes (hashed as they come), where it is, what went wrong."""

    kind: str
    sha: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    seq: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)

    def output(self, offset: int, data: bytes) -> None:
        if offset != self.size:
            self.errors.append(f"{self.kind}: offset {offset}, expected {self.size}")
        self.sha.update(data)
        self.size += len(data)

    def event(self, seq: int) -> None:
        if seq != self.seq + 1:
            self.errors.append(f"{self.kind}: seq {seq} after {self.seq}")
        self.seq = seq


def _event(copy: Copy, ev: dict[str, Any]) -> bool:
    """Take one event; True at `complete`."""
    copy.event(ev["seq"])
    if ev["type"] in ("stdout", "stderr"):
        copy.output(ev["data"]["offset"], base64.b64decode(ev["data"]["b64"]))
    return bool(ev["type"] == "complete")


async def _sse_once(http: aiohttp.ClientSession, url: str, job: str, copy: Copy, hdr: Any) -> bool:
    headers = {**hdr, "Accept": "text/event-stream", "Last-Event-ID": str(copy.seq)}
    async with http.get(f"{url}/jobs/{job}/events?encoding=base64", headers=headers) as r:
        parser = SSEParser()
        async for chunk in r.content.iter_any():
            for msg in parser.feed(chunk):
                if msg.data and _event(copy, json.loads(msg.data)):
                    return True
    return False


async def _ws_once(http: aiohttp.ClientSession, url: str, job: str, copy: Copy, hdr: Any) -> bool:
    async with http.ws_connect(
        f"{url}/jobs/{job}/ws?encoding=base64&after={copy.seq}", headers=hdr
    ) as ws:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                ev = json.loads(msg.data)
                if "seq" in ev and _event(copy, ev):
                    return True
    return False


async def _log_once(http: aiohttp.ClientSession, url: str, job: str, copy: Copy, hdr: Any) -> bool:
    headers = {**hdr, "Range": f"bytes={copy.size}-"}
    async with http.get(f"{url}/jobs/{job}/log?follow=1", headers=headers) as r:
        if r.status != 200:
            copy.errors.append(f"log: status {r.status}")
            return True
        async for chunk in r.content.iter_any():
            copy.output(copy.size, chunk)
    return True  # a body that ended cleanly (a cut one raises): the job has ended


_ONCE = {"sse": _sse_once, "ws": _ws_once, "log": _log_once}
_CUT = (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError, json.JSONDecodeError)


async def follow(srv: Server, url: str, job: str, kind: str, within: float = 600.0) -> Copy:
    """Follow `job` at `url` (the server, or a proxy in front of it) to its end, resuming after
    every cut from where the copy is."""
    copy = Copy(kind)
    deadline = time.monotonic() + within
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        while time.monotonic() < deadline:
            try:
                if await _ONCE[kind](http, url, job, copy, srv.headers):
                    return copy
            except _CUT:
                pass
            copy.reconnects += 1
            await asyncio.sleep(0.005)
    copy.errors.append(f"{kind}: not finished within {within} s")
    return copy


# -- the cutting proxy ---------------------------------------------------------------------------


class CuttingProxy:
    """TCP from clients to `upstream`; `cut()` ends a random live connection, in the middle of a
    chunk of the server's bytes when one comes within a moment (mid-frame), else at once."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = _free_port()
        #: each live connection: its client side, its server side, whether its cut is armed
        self.live: dict[int, list[Any]] = {}
        self.cuts = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._conn, HOST, self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for cw, uw, _ in list(self.live.values()):
            cw.transport.abort()
            uw.transport.abort()

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(HOST, self.upstream)
        except OSError:
            cw.transport.abort()
            return
        key = id(cw)
        self.live[key] = [cw, uw, False]
        up = asyncio.create_task(self._pump(cr, uw))
        try:
            while data := await ur.read(65536):
                if self.live[key][2]:  # armed: part of this chunk, then the cut
                    cw.write(data[: random.randint(0, len(data) - 1)])
                    break
                cw.write(data)
                await cw.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.live.pop(key, None)
            up.cancel()
            cw.transport.abort()
            uw.transport.abort()

    @staticmethod
    async def _pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()

    def cut(self) -> bool:
        if not self.live:
            return False
        entry = self.live[random.choice(list(self.live))]
        if entry[2]:
            return False
        self.cuts += 1
        if random.random() < 0.5:
            entry[0].transport.abort()  # between whatever frames were sent
            entry[1].transport.abort()
        else:
            entry[2] = True
        return True


async def part_cuts(work: Path, short: bool) -> dict[str, Any]:
    followers, lines, cuts = (9, 100_000, 60) if short else (100, 1_000_000, 1_000)
    srv = await Server(work / "cuts").start()
    proxy = await CuttingProxy(srv.port).start()
    try:
        spec, expected = _lines_job(lines, 1000, 0.03 if short else 0.015)
        async with aiohttp.ClientSession() as http:
            job = (await _api(http, srv, "POST", "/jobs", json=spec))["id"]
        kinds = [("sse", "ws", "log")[i % 3] for i in range(followers)]
        tasks = [asyncio.create_task(follow(srv, proxy_url(proxy), job, k)) for k in kinds]
        while proxy.cuts < cuts and not all(t.done() for t in tasks):
            await asyncio.sleep(random.uniform(0, 0.004 if not short else 0.04))
            proxy.cut()
        copies = await asyncio.gather(*tasks)
    finally:
        await proxy.stop()
        srv.stop()
    want = hashlib.sha256(expected).hexdigest()
    errors = [e for c in copies for e in c.errors]
    errors += [
        f"{c.kind} follower: hash differs ({c.size} bytes)"
        for c in copies
        if c.sha.hexdigest() != want
    ]
    if proxy.cuts < cuts:
        errors.append(f"only {proxy.cuts} cuts of {cuts}: the followers finished first")
    return {
        "part": "cuts",
        "followers": followers,
        "lines": lines,
        "bytes": len(expected),
        "cuts": proxy.cuts,
        "reconnects": sum(c.reconnects for c in copies),
        "exact": sum(c.sha.hexdigest() == want for c in copies),
        "errors": errors[:20],
    }


def proxy_url(proxy: CuttingProxy) -> str:
    return f"http://{HOST}:{proxy.port}"


# -- connect / disconnect cycles ------------------------------------------------------------------


async def _raw_cycle(srv: Server, job: str, kind: str, abrupt: bool) -> None:
    """One client of `kind` that connects, reads a little and goes, cleanly or with a RST."""
    reader, writer = await asyncio.open_connection(HOST, srv.port)
    path = {
        "sse": f"/jobs/{job}/events",
        "log": f"/jobs/{job}/log?follow=1",
        "ws": f"/jobs/{job}/ws",
    }[kind]
    extra = ""
    if kind == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        extra += "Sec-WebSocket-Version: 13\r\n"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\n"
        f"Authorization: Bearer {srv.token}\r\n{extra}\r\n"
    )
    try:
        writer.write(request.encode())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        await asyncio.wait_for(reader.read(1), 10)  # its first bytes: it is following
    finally:
        if abrupt:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _settled(http: aiohttp.ClientSession, srv: Server) -> dict[str, Any]:
    """The server's figures once every client of the cycles has gone from its view."""
    for _ in range(200):
        stats = await _api(http, srv, "GET", "/stats")
        if stats["clients"]["total"] == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stats = await _api(http, srv, "GET", "/stats")
    return {"fds": srv.fds(), "tasks": stats["tasks"], "rss_kib": srv.rss_kib()}


async def part_cycles(
    work: Path, short: bool, types: tuple[str, ...] = ("sse", "ws", "log")
) -> dict[str, Any]:
    # The warm-up brings the allocator to its high-water mark for 50 clients at a time.
    n, warm = (1500, 2000) if short else (10_000, 2000)
    if types == ("ws",):
        n, warm = (3000, 5000) if short else (10_000, 5000)
    srv = await Server(work / "cycles").start()
    try:
        async with aiohttp.ClientSession() as http:
            # Quiet after its first line: a job whose tail grew would grow the RSS by itself
            # (up to the tail's bound), not by what the clients leave behind.
            spec = {"command": "echo ready; exec sleep 3600"}
            job = (await _api(http, srv, "POST", "/jobs", json=spec))["id"]
            kinds = [(k, abrupt) for k in types for abrupt in (False, True)]
            failures = 0

            async def cycles(count: int) -> None:
                nonlocal failures
                for start in range(0, count, 50):
                    batch = [
                        _raw_cycle(srv, job, *kinds[i % len(kinds)])
                        for i in range(start, min(count, start + 50))
                    ]
                    for r in await asyncio.gather(*batch, return_exceptions=True):
                        failures += isinstance(r, BaseException)

            await cycles(warm)
            before = await _settled(http, srv)
            await cycles(n)
            after = await _settled(http, srv)
            await _api(http, srv, "POST", f"/jobs/{job}/cancel")
    finally:
        srv.stop()
    errors = [f"{failures} cycles failed"] if failures else []
    for key, value in before.items():
        if after[key] > value * 1.1 + (1 if key != "rss_kib" else 0):
            errors.append(f"{key}: {value} before, {after[key]} after {n} cycles")
    part = "cycles" if len(types) > 1 else f"cycles-{types[0]}"
    return {"part": part, "cycles": n, "before": before, "after": after, "errors": errors}


# -- mixed load ----------------------------------------------------------------------------------


async def part_mixed(work: Path, short: bool, seconds: float | None = None) -> dict[str, Any]:
    duration = seconds or (25.0 if short else 1800.0)
    srv = await Server(work / "mixed", stall_timeout_seconds="2").start()
    errors: list[str] = []
    samples: list[tuple[float, int]] = []
    counts = {"jobs": 0, "followers": 0, "cancelled": 0}
    try:
        async with aiohttp.ClientSession() as http:
            # The in-memory rings (the firehose's, the tails') fill to their bound first, so what
            # is measured after the warm-up is growth, not their filling.
            filler = await _api(http, srv, "POST", "/jobs", json={"command": "seq 3000000"})
            async with http.get(
                f"{srv.url}/jobs/{filler['id']}/log?follow=1", headers=srv.headers
            ) as r:
                await r.read()
            stalled = asyncio.create_task(_stalled_client(http, srv, duration))
            end = time.monotonic() + duration
            checks: list[asyncio.Task[None]] = []
            t0 = time.monotonic()
            while time.monotonic() < end:
                checks.append(asyncio.create_task(_one_job(http, srv, counts, errors)))
                if random.random() < 0.2:
                    checks.append(asyncio.create_task(_cancelled(http, srv, counts, errors)))
                samples.append((time.monotonic() - t0, srv.rss_kib()))
                await asyncio.sleep(0.25)
                checks = [c for c in checks if not c.done()]
            await asyncio.gather(*checks)
            dropped = await stalled
            stats = await _api(http, srv, "GET", "/stats")
    finally:
        srv.stop()
    if not dropped or stats["stalled_disconnects"] < 1:
        errors.append("the client that never reads was not disconnected")
    errors += [f"server log: {line}" for line in srv.errors_logged()[:10]]
    warm = [rss for t, rss in samples if t >= duration * 0.3]
    growth = (warm[-1] / warm[0] - 1) * 100 if len(warm) > 1 else 0.0
    if growth > 5:
        errors.append(f"RSS grew {growth:.1f}% after the warm-up ({warm[0]} -> {warm[-1]} KiB)")
    return {
        "part": "mixed",
        "seconds": duration,
        **counts,
        "rss_kib_after_warmup": warm[0] if warm else None,
        "rss_kib_end": warm[-1] if warm else None,
        "rss_growth_pct": round(growth, 2),
        "rss_kib_along": [warm[i * (len(warm) - 1) // 4] for i in range(5)] if warm else [],
        "errors": errors[:20],
    }


async def _one_job(
    http: aiohttp.ClientSession, srv: Server, counts: dict[str, int], errors: list[str]
) -> None:
    spec, expected = _lines_job(random.randint(1, 30_000), random.choice([100, 1000]), 0.01)
    job = (await _api(http, srv, "POST", "/jobs", json=spec))["id"]
    counts["jobs"] += 1
    kinds = random.sample(["sse", "ws", "log"], random.randint(0, 3))
    counts["followers"] += len(kinds)
    copies = await asyncio.gather(*(follow(srv, srv.url, job, k, within=120) for k in kinds))
    want = hashlib.sha256(expected).hexdigest()
    for c in copies:
        errors += c.errors
        if c.sha.hexdigest() != want:
            errors.append(f"job {job}: the {c.kind} follower's copy differs ({c.size} bytes)")
    # Followed to its end, the whole of it, as the store keeps it.
    async with http.get(f"{srv.url}/jobs/{job}/log?follow=1", headers=srv.headers) as r:
        stored = await r.read()
    status = (await _job(http, srv, job))["status"]
    if status != "succeeded" or stored != expected:
        errors.append(f"job {job}: {status}, its stored output {len(stored)} bytes")


async def _job(http: aiohttp.ClientSession, srv: Server, job: str) -> dict[str, Any]:
    result: dict[str, Any] = await _api(http, srv, "GET", f"/jobs/{job}")
    return result


async def _cancelled(
    http: aiohttp.ClientSession, srv: Server, counts: dict[str, int], errors: list[str]
) -> None:
    job = (await _api(http, srv, "POST", "/jobs", json={"command": "sleep 30"}))["id"]
    await asyncio.sleep(random.uniform(0, 0.5))
    await _api(http, srv, "POST", f"/jobs/{job}/cancel")
    status = (await _job(http, srv, job))["status"]
    if status != "cancelled":
        errors.append(f"job {job}: {status} after its cancel")
    counts["cancelled"] += 1


async def _stalled_client(http: aiohttp.ClientSession, srv: Server, within: float) -> bool:
    """A follower of a chatty job that never reads: True once the server has let it go."""
    spec = {"command": "yes 'a line that fills the buffers of a client that never reads'"}
    job = (await _api(http, srv, "POST", "/jobs", json=spec))["id"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (HOST, srv.port))
    request = (
        f"GET /jobs/{job}/events HTTP/1.1\r\nHost: {HOST}:{srv.port}\r\n"
        f"Authorization: Bearer {srv.token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    dropped = False
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not dropped:
        await asyncio.sleep(0.5)
        stats = await _api(http, srv, "GET", "/stats")
        dropped = stats["stalled_disconnects"] >= 1
    sock.close()
    await _api(http, srv, "POST", f"/jobs/{job}/cancel")
    return dropped


# -- the driver ----------------------------------------------------------------------------------

PARTS: dict[str, Callable[[Path, bool], Awaitable[dict[str, Any]]]] = {
    "cuts": part_cuts,
    "cycles": part_cycles,
    # WebSockets alone: dropped ones once left their whole request behind in reference cycles
    "cycles-ws": lambda work, short: part_cycles(work, short, ("ws",)),
    "mixed": part_mixed,
}


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", help=f"some of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--short", action="store_true", help="the version make test runs")
    parser.add_argument("--json", action="store_true", help="a JSON line per part")
    parser.add_argument("--mixed-seconds", type=float, help="how long `mixed` runs (30 min)")
    a = parser.parse_args(argv)
    if unknown := [p for p in a.parts if p not in PARTS]:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="jobcast-soak-") as tmp:
        for name in a.parts or list(PARTS):
            t0 = time.monotonic()
            if name == "mixed":
                result = await part_mixed(Path(tmp), a.short, a.mixed_seconds)
            else:
                result = await PARTS[name](Path(tmp), a.short)
            result["elapsed_s"] = round(time.monotonic() - t0, 1)
            failed = failed or bool(result["errors"])
            print(json.dumps(result) if a.json else _readable(result), flush=True)
    return 1 if failed else 0


def _readable(result: dict[str, Any]) -> str:
    figures = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("part", "errors"))
    verdict = "ok" if not result["errors"] else "FAILED: " + "; ".join(result["errors"])
    return f"{result['part']}: {figures}: {verdict}"


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main(sys.argv[1:])))
