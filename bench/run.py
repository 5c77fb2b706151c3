"""jobcast benchmark suite: `make bench`, or `.venv/bin/python bench/run.py [SCENARIO ...]`.

Every scenario starts a fresh server (`python -m jobcast serve`, pinned to CPU 0 with taskset)
on a temporary data directory, and drives it from one load-generator process (bench/loadgen.py,
pinned to CPU 1). The jobs under test (bench/producer.py) run on CPU 1 too, so CPU 0 does only the
server's own work. Each figure is the median of --runs runs (min and max shown beside it). The
result is a Markdown table on stdout (paste it into bench/RESULTS.md); the raw per-run figures go
to bench/out/ as JSON.

Scenarios:
  bulk            one job writing 1 GiB; one /log?follow=1, SSE, WebSocket (JSON and raw) client,
                  each on its own server: MB/s of output from job start to complete, vs `dd | cat`
  resume          Last-Event-ID near the end of a finished 1 GiB job: time to the first event,
                  on the server that ran it and on a server restarted on its data
  fanout-sse      1,000 SSE clients following a job printing 1,000 timestamped lines/s
  fanout-ws       the same with 1,000 WebSocket clients
  fanout-10k-sse  500 SSE clients, 10,000 lines/s
  fanout-10k-ws   500 WebSocket clients, 10,000 lines/s
  memory          server RSS per idle follower (1,000 SSE, then 1,000 WebSocket on a sleeping job)
  ttfb            POST /jobs `echo hi` -> first output byte at a client
  pty-viewers     1,000 raw WebSocket viewers of one PTY session printing 1,000 lines/s
  mux-500         one /ws connection subscribed to "*" following 500 jobs, 10 lines/s each
  mux-500x100     100 such connections (--mux-connections), the same 500 jobs
  extract-bulk    bulk over SSE (--bulk-bytes) with 5 extractors and progress detection on, vs
                  both off, alternating in one run (goal: on >= 70% of off)
  extract-fanout  1,000 SSE followers x 1k lines/s, extractors and progress on, then off
                  (goal: p99 on within 10% of off)
  (`fanout` selects the four fan-out scenarios)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile, raise_nofile

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
SERVER_CPU = "0"
CLIENT_CPU = "1"
GIB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: above this much CPU (% of one core) used by other processes, figures are suspect
BUSY_PCT = 25


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True)
class Target:
    op: str  # ">=", "<=", "=="
    value: float

    def met(self, x: float) -> bool:
        if self.op == ">=":
            return x >= self.value
        if self.op == "<=":
            return x <= self.value
        return x == self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Metric:
    scenario: str
    name: str
    value: float
    unit: str
    target: Target | None = None


@dataclass
class Config:
    runs: int
    quick: bool
    duration: float
    bulk_bytes: int
    clients: int
    clients_10k: int
    ttfb_n: int
    resume_n: int
    procs: int
    quiet_wait: float
    retries: int
    server_env: dict[str, str]
    out: Path
    verbose: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    #: jobs of the /ws scenarios, and connections of the many-connection one
    mux_jobs: int = 500
    mux_connections: int = 100

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The server under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_argv() -> list[str]:
    """`python -m jobcast serve` (or the click command itself while jobcast/__main__ is missing)."""
    if importlib.util.find_spec("jobcast.__main__") is not None:
        return [PY, "-m", "jobcast", "serve"]
    return [PY, "-c", "from jobcast.cli.serve import serve; serve()"]


class Server:
    """One `jobcast serve` on CPU 0, its own port and data directory; stop() ends it (SIGTERM)."""

    def __init__(self, cfg: Config, data_dir: Path, *, fresh: bool = True) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.port = free_port()
        self.token: str | None = None
        if fresh and data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{data_dir.name}-server-{self.port}.log"
        self.argv = [
            "taskset", "-c", SERVER_CPU, *serve_argv(),
            "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data_dir),
            "--max-output-bytes", str(4 * GIB), "--log-level", "warning",
        ]  # fmt: skip
        env = {**os.environ, "JOBCAST_AUTH": "none", **cfg.server_env}
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=raise_nofile,
                cwd=ROOT,
            )
        self.pid = self.proc.pid
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the server exited ({self.proc.returncode}): {self.log_tail()}")
            token_file = self.data_dir / "token"
            if token_file.exists():
                self.token = token_file.read_text().strip() or None
            with contextlib.suppress(OSError, BenchError):
                self.api("GET", "/status")
                return
            time.sleep(0.05)
        raise BenchError(
            f"the server did not answer /status within {timeout:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise BenchError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None
        return json.loads(raw) if raw else None

    def post_job(self, argv: list[str], **spec: Any) -> dict[str, Any]:
        job: dict[str, Any] = self.api("POST", "/jobs", {"argv": argv, **spec})
        return job

    def wait_job(self, job_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.api("GET", f"/jobs/{job_id}")
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(0.1)
        raise BenchError(f"job {job_id} still not finished after {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (its jobs are children: not counted)."""
        user, system, _ = self.counters()
        return user + system

    def counters(self) -> tuple[float, float, int]:
        """(user CPU s, system CPU s, minor page faults) of the server process."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK, int(fields[7])

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BenchError("no VmRSS in /proc/<pid>/status")


# --------------------------------------------------------------------------------------------
# The machine is shared: how much CPU went to processes other than ours


def _jiffies(pid: int, with_children: bool = False) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(x) for x in fields[11 : 15 if with_children else 13])


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def _machine_busy() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


class CpuWindow:
    """CPU used on the whole machine over a window, and how much of it was not ours."""

    def __init__(self, srv: Server, loadgens: list[Loadgen]) -> None:
        self.srv, self.pids = srv, [lg.proc.pid for lg in loadgens] + [os.getpid()]
        self.t0, self.busy0, self.ours0 = time.monotonic(), _machine_busy(), self._ours()

    def _ours(self) -> int:
        return (
            _jiffies(self.srv.pid, with_children=True)
            + sum(_jiffies(p) for p in _children(self.srv.pid))
            + sum(_jiffies(p) for p in self.pids)
        )

    def other_pct(self) -> float:
        """% of one core used by other processes on the machine during the window."""
        secs = time.monotonic() - self.t0
        other = (_machine_busy() - self.busy0) - (self._ours() - self.ours0)
        return max(0.0, other / CLK_TCK / secs * 100)


class MachineWatch:
    """Over a whole scenario: CPU used on the machine by anything but this driver and its
    descendants (servers, load generators, jobs: all waited for by the end of the scenario)."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.ours0 = time.monotonic(), _machine_busy(), self._ours()

    @staticmethod
    def _ours() -> int:
        return _jiffies(os.getpid(), with_children=True)

    def other_pct(self) -> float:
        secs = time.monotonic() - self.t0
        other = (_machine_busy() - self.busy0) - (self._ours() - self.ours0)
        return max(0.0, other / CLK_TCK / secs * 100)


def wait_quiet(cfg: Config) -> None:
    """Wait (up to cfg.quiet_wait s) until other processes use < BUSY_PCT % of a core."""
    deadline = time.monotonic() + cfg.quiet_wait
    while True:
        b0, t0 = _machine_busy(), time.monotonic()
        time.sleep(1.0)
        busy = (_machine_busy() - b0) / CLK_TCK / (time.monotonic() - t0) * 100
        if busy < BUSY_PCT:
            return
        if time.monotonic() > deadline:
            cfg.log(
                f"  WARNING: the machine is busy ({busy:.0f}% of a core in other processes); going on"
            )
            return
        cfg.log(f"  the machine is busy ({busy:.0f}% of a core in other processes): waiting")
        time.sleep(4.0)


@contextlib.contextmanager
def server(cfg: Config, name: str) -> Iterator[Server]:
    data_dir = cfg.out / "data" / name
    srv = Server(cfg, data_dir)
    try:
        yield srv
    finally:
        srv.stop()
        if not cfg.verbose:
            shutil.rmtree(data_dir, ignore_errors=True)


def producer(*args: str) -> list[str]:
    """A job's argv: bench/producer.py on the load generator's CPU."""
    return ["taskset", "-c", CLIENT_CPU, PY, str(BENCH / "producer.py"), *args]


# --------------------------------------------------------------------------------------------
# The load generator


class Loadgen:
    """bench/loadgen.py on CPU 1: `ready`, then we say `go <t>`, then `done <t>`, then JSON."""

    def __init__(self, srv: Server, command: str, *args: str) -> None:
        argv = [
            "taskset",
            "-c",
            CLIENT_CPU,
            PY,
            str(BENCH / "loadgen.py"),
            command,
            "--port",
            str(srv.port),
            *args,
        ]
        if srv.token:
            argv += ["--token", srv.token]
        self.command = command
        self.err_path = srv.log_path.with_name(
            f"{srv.log_path.stem}-loadgen-{command}-{time.monotonic_ns()}.log"
        )
        self._err: TextIO = open(self.err_path, "w")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            preexec_fn=raise_nofile,
        )
        self._buf = b""

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                self.close()
                raise BenchError(
                    f"loadgen {self.command}: nothing said for {timeout:.0f} s: {self.err_tail()}"
                )
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    self.close()
                    raise BenchError(f"loadgen {self.command} exited: {self.err_tail()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def err_tail(self) -> str:
        try:
            return self.err_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def expect(self, word: str, timeout: float) -> str:
        line = self._readline(timeout)
        if line.split(" ", 1)[0] != word:
            raise BenchError(f"loadgen {self.command}: expected {word!r}, got {line[:300]!r}")
        return line

    def go(self, t: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {t:.6f}\n".encode())
        self.proc.stdin.flush()

    def done(self, timeout: float) -> float:
        return float(self.expect("done", timeout).split()[1])

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        line = self._readline(timeout)
        while line.startswith("done"):
            line = self._readline(timeout)
        try:
            out: dict[str, Any] = json.loads(line)
        except ValueError:
            raise BenchError(f"loadgen {self.command}: {line[:300]!r}: {self.err_tail()}") from None
        self.close()
        return out

    def close(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


# --------------------------------------------------------------------------------------------
# Scenarios


def pipe_mbps(nbytes: int) -> float:
    """The plain pipe on this machine: `dd if=/dev/zero bs=64k count=N | cat > /dev/null`."""
    count = nbytes // 65536
    t0 = time.perf_counter()
    subprocess.run(
        [
            "taskset",
            "-c",
            f"{SERVER_CPU},{CLIENT_CPU}",
            "sh",
            "-c",
            f"dd if=/dev/zero bs=64k count={count} 2>/dev/null | cat > /dev/null",
        ],
        check=True,
    )
    return count * 65536 / 1e6 / (time.perf_counter() - t0)


def file_mbps(directory: Path, nbytes: int) -> float:
    """Buffered writes into a file where the server keeps output: `dd bs=1M` on the server's CPU.

    Every job's output goes through such writes. The file is deleted at once, which also frees
    its page-cache pages for the next writer: on a fresh virtual machine the first write into a
    never-used page costs a fault in the host, so a first run is much slower than the next.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "dd-file-write"
    t0 = time.perf_counter()
    subprocess.run(
        [
            "taskset", "-c", SERVER_CPU, "dd", "if=/dev/zero", f"of={target}", "bs=1M",
            f"count={nbytes >> 20}", "status=none",
        ],
        check=True,
    )  # fmt: skip
    mbps = (nbytes >> 20 << 20) / 1e6 / (time.perf_counter() - t0)
    target.unlink()
    return mbps


BULK_TARGETS = {"log": Target(">=", 500), "sse": Target(">=", 200)}


def loop_lag(srv: Server, scenario: str, label: str, t0: float, t1: float) -> list[Metric]:
    """The server's event-loop lag (its own probe, /stats) over the run, from t0 to t1."""
    seconds = min(60, max(1, math.ceil(t1 - t0)))
    lag = srv.api("GET", f"/stats?lag_seconds={seconds}").get("loop_lag_ms")
    if lag is None:
        return []  # a server from before the probe (an A/B against old code)
    return [
        Metric(scenario, f"{label}server event-loop lag {q}", lag[q], "ms")
        for q in ("p50", "p99", "max")
    ]


def scenario_bulk(cfg: Config) -> list[Metric]:
    pipe = pipe_mbps(cfg.bulk_bytes)
    # Twice: the first write into fresh pages is the machine's cost, not the server's (see above);
    # the second is what every scenario after it meets, so the first client is not penalised.
    first = file_mbps(cfg.out / "data", cfg.bulk_bytes)
    again = file_mbps(cfg.out / "data", cfg.bulk_bytes)
    out = [
        Metric("bulk", "plain pipe: dd bs=64k into cat", pipe, "MB/s"),
        Metric("bulk", "file write: dd bs=1M into the data dir, first", first, "MB/s"),
        Metric("bulk", "file write: dd bs=1M into the data dir, again", again, "MB/s"),
    ]
    for kind in ("log", "sse", "ws", "ws-raw"):
        with server(cfg, f"bulk-{kind}") as srv:
            go = srv.data_dir / "go"
            job = srv.post_job(producer("bulk", "--bytes", str(cfg.bulk_bytes), "--go", str(go)))
            lg = Loadgen(srv, "bulk", "--job", job["id"], "--kind", kind, "--timeout", "600")
            lg.expect("ready", 60)
            (user0, sys0, faults0), t0 = srv.counters(), time.time()
            go.touch()
            lg.go(t0)
            t1 = lg.done(660)
            user1, sys1, faults1 = srv.counters()
            cpu0, cpu1 = user0 + sys0, user1 + sys1
            res = lg.result()
            if res["output_bytes"] != cfg.bulk_bytes or res["seq_errors"] or res["offset_errors"]:
                raise BenchError(f"bulk {kind}: received {res} of {cfg.bulk_bytes} bytes")
            mbps = cfg.bulk_bytes / 1e6 / res["seconds"]
            name = {
                "log": "/log?follow=1",
                "sse": "SSE",
                "ws": "WebSocket JSON",
                "ws-raw": "WebSocket raw",
            }[kind]
            # The job's end waits for the fsync of its output (the durability promise), after
            # its last byte has been sent: the stream's own rate is to that last byte.
            to_last = res.get("seconds_to_last_byte") or res["seconds"]
            out += [
                Metric("bulk", f"{name}", mbps, "MB/s", BULK_TARGETS.get(kind)),
                Metric("bulk", f"{name}: to the last byte", cfg.bulk_bytes / 1e6 / to_last, "MB/s"),
                Metric(
                    "bulk", f"{name}: last byte -> end", (res["seconds"] - to_last) * 1000, "ms"
                ),
                Metric("bulk", f"{name} / pipe", mbps / pipe, "ratio"),
                Metric("bulk", f"{name} / file write", mbps / again, "ratio"),
                Metric("bulk", f"{name}: server CPU", (cpu1 - cpu0) / (t1 - t0) * 100, "% core"),
                Metric(
                    "bulk",
                    f"{name}: server CPU in the kernel",
                    (sys1 - sys0) / max(cpu1 - cpu0, 1e-9) * 100,
                    "%",
                ),
                Metric(
                    "bulk",
                    f"{name}: server page faults per MiB",
                    (faults1 - faults0) / (cfg.bulk_bytes / (1 << 20)),
                    "faults",
                ),
                Metric(
                    "bulk", f"{name}: client CPU", res["client_cpu_s"] / (t1 - t0) * 100, "% core"
                ),
                *loop_lag(srv, "bulk", f"{name}: ", t0, t1),
            ]
            cfg.log(
                f"  bulk {kind}: {mbps:.0f} MB/s, {res['events']} events, server CPU "
                f"{(cpu1 - cpu0) / (t1 - t0) * 100:.0f}%"
            )
    return out


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _fanout(
    cfg: Config,
    scenario: str,
    kind: str,
    clients: int,
    rate: int,
    p99_target: float,
    pty: bool = False,
    **job_extra: Any,
) -> list[Metric]:
    with server(cfg, scenario) as srv:
        go = srv.data_dir / "go"
        argv = producer(
            "lines", "--rate", str(rate), "--duration", str(cfg.duration), "--go", str(go)
        )
        if pty:
            # The lines as written: no \r added to each \n (the load generator counts 100-byte
            # lines), no echo.
            argv = ["sh", "-c", 'stty -onlcr -echo; exec "$@"', "sh", *argv]
        job = srv.post_job(argv, pty=pty, **job_extra)
        lgs = [
            Loadgen(
                srv,
                "viewers" if kind == "ws-raw" else "fanout",
                "--job",
                job["id"],
                "--kind",
                kind,
                "--clients",
                str(n),
                "--timeout",
                str(cfg.duration + 90),
            )
            for n in _split(clients, cfg.procs)
        ]
        for lg in lgs:
            lg.expect("ready", 120)
        connected = srv.api("GET", "/stats")["clients"]["total"]
        cpu0, t0, window = srv.cpu_seconds(), time.time(), CpuWindow(srv, lgs)
        go.touch()
        for lg in lgs:
            lg.go(t0)
        t1 = max(lg.done(cfg.duration + 120) for lg in lgs)
        cpu1, other = srv.cpu_seconds(), window.other_pct()
        lag = loop_lag(srv, scenario, "", t0, t1)
        results = [lg.result() for lg in lgs]
    cpu = {"server": (cpu1 - cpu0) / (t1 - t0) * 100, "server_s": cpu1 - cpu0, "other": other}
    return _fanout_metrics(cfg, scenario, results, clients, connected, cpu, p99_target) + lag


def _merged(results: list[dict[str, Any]], key: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in results:
        for b, c in r[key]:
            out[b] = out.get(b, 0) + c
    return out


def _p(hist: dict[int, int], p: float) -> int:
    return percentile(hist, p) or 0


def _fanout_metrics(
    cfg: Config,
    scenario: str,
    results: list[dict[str, Any]],
    clients: int,
    connected: int,
    cpu: dict[str, float],
    p99_target: float,
) -> list[Metric]:
    hist, ingest, delivery = (_merged(results, k) for k in ("hist", "hist_ingest", "hist_delivery"))
    q = results[0]["quantum_ms"]
    per_client = results[0]["lines_per_client"]
    received = sum(r["lines_received"] for r in results)
    seconds = max(r["t_end"] for r in results) - results[0]["t_go"]
    errors = sum(r["event_seq_errors"] + r["mismatched_events"] + r["malformed"] for r in results)
    p50, p99 = percentile(hist, 50), percentile(hist, 99)
    lag = max(r["loop_lag_p99_ms"] for r in results)
    events = sum(r["output_events"] for r in results)  # output events received, all clients
    client_cpu = sum(r["client_cpu_s"] for r in results) / seconds * 100
    cfg.log(
        f"  {scenario}: {connected}/{clients} connected, {received:,} lines in {seconds:.1f} s, "
        f"p50 {p50 and p50 * q:.1f} ms, p99 {p99 and p99 * q:.1f} ms, server CPU {cpu['server']:.0f}%, "
        f"client CPU {client_cpu:.0f}%, client loop lag p99 {lag:.1f} ms, errors {errors}, "
        f"other processes {cpu['other']:.0f}%"
    )
    if client_cpu > 85:
        cfg.log(
            f"  WARNING {scenario}: the load generator used {client_cpu:.0f}% of its core: "
            "it may be the bottleneck"
        )
    return [
        Metric(scenario, "lines/s delivered (all clients)", received / seconds, "lines/s"),
        Metric(
            scenario,
            "delivered",
            received / (clients * per_client) * 100 if per_client else 0,
            "%",
            Target("==", 100),
        ),
        Metric(scenario, "latency p50", (p50 or 0) * q, "ms"),
        Metric(scenario, "latency p99", (p99 or 0) * q, "ms", Target("<=", p99_target)),
        Metric(scenario, "latency max", max(hist, default=0) * q, "ms"),
        Metric(scenario, "of which line -> event ts (pipe, batch): p50", _p(ingest, 50) * q, "ms"),
        Metric(scenario, "of which line -> event ts (pipe, batch): p99", _p(ingest, 99) * q, "ms"),
        Metric(scenario, "of which event ts -> client (fan-out): p50", _p(delivery, 50) * q, "ms"),
        Metric(scenario, "of which event ts -> client (fan-out): p99", _p(delivery, 99) * q, "ms"),
        Metric(scenario, "lines lost", sum(r["lost"] for r in results), "lines", Target("==", 0)),
        Metric(
            scenario,
            "lines duplicated",
            sum(r["duplicated"] for r in results),
            "lines",
            Target("==", 0),
        ),
        Metric(scenario, "event seq/byte errors", errors, "count", Target("==", 0)),
        Metric(scenario, "server CPU", cpu["server"], "% core"),
        Metric(
            scenario, "output events per client per second", events / clients / seconds, "events/s"
        ),
        Metric(
            scenario,
            "server CPU per event per client",
            cpu["server_s"] / max(1, events) * 1e6,
            "µs",
        ),
        Metric(scenario, "load generator CPU", client_cpu, "% core"),
    ]


def scenario_fanout_sse(cfg: Config) -> list[Metric]:
    return _fanout(cfg, "fanout-sse", "sse", cfg.clients, 1000, 80)


def scenario_fanout_ws(cfg: Config) -> list[Metric]:
    return _fanout(cfg, "fanout-ws", "ws", cfg.clients, 1000, 80)


def scenario_fanout_10k_sse(cfg: Config) -> list[Metric]:
    return _fanout(cfg, "fanout-10k-sse", "sse", cfg.clients_10k, 10000, 100)


def scenario_fanout_10k_ws(cfg: Config) -> list[Metric]:
    return _fanout(cfg, "fanout-10k-ws", "ws", cfg.clients_10k, 10000, 100)


def scenario_pty_viewers(cfg: Config) -> list[Metric]:
    """1,000 viewers of one PTY session printing 1,000 lines/s, as raw WebSocket frames."""
    return _fanout(cfg, "pty-viewers", "ws-raw", cfg.clients, 1000, 40, pty=True)


#: lines a second each job of the /ws scenarios prints
MUX_RATE = 10


def mux_producer(lines: int, go: Path) -> list[str]:
    """A job printing `lines` lines `I TS` (TS: the time of the write), MUX_RATE a second, from
    when `go` exists (all the jobs are running by then: creating them is not measured), each
    at a random phase of the period.

    bash with builtins only (`read -t` on a pipe nobody writes is the sleep): hundreds of these
    at once cost little, where as many Python producers would take gigabytes.
    """
    pause = 1 / MUX_RATE
    script = (
        f"exec 9<> <(:); while [ ! -e {go} ]; do read -t 0.05 -u 9; done; "
        # Each at its own phase of the period, as jobs started one by one would be, not all
        # 500 writing in the same millisecond.
        f"printf -v phase '0.%03d' $((RANDOM % {round(1000 * pause)})); read -t $phase -u 9; "
        f"for ((i=1; i<={lines}; i++)); do "
        f'printf "%d %s\\n" $i "$EPOCHREALTIME"; read -t {pause:g} -u 9; done'
    )
    return ["taskset", "-c", CLIENT_CPU, "bash", "-c", script]


def _mux(cfg: Config, scenario: str, connections: int, p99_target: float) -> list[Metric]:
    """`connections` /ws connections, each subscribed to "*", following cfg.mux_jobs jobs."""
    jobs, lines = cfg.mux_jobs, max(1, round(MUX_RATE * cfg.duration))
    env = {"JOBCAST_MAX_RUNNING_JOBS": str(jobs + 10), **cfg.server_env}
    with server(replace(cfg, server_env=env), scenario) as srv:
        lgs = [
            Loadgen(
                srv,
                "mux",
                "--clients",
                str(n),
                "--jobs",
                str(jobs),
                "--lines",
                str(lines),
                "--timeout",
                str(cfg.duration + 120),
            )
            for n in _split(connections, cfg.procs)
        ]
        for lg in lgs:
            lg.expect("ready", 180)
        go = srv.data_dir / "go"
        created = [srv.post_job(mux_producer(lines, go))["id"] for _ in range(jobs)]
        deadline = time.monotonic() + 120
        while srv.api("GET", "/status")["jobs"]["running"] < len(created):
            if time.monotonic() > deadline:
                raise BenchError(f"{scenario}: the {jobs} jobs were not all running after 120 s")
            time.sleep(0.2)
        cpu0, t0, window = srv.cpu_seconds(), time.time(), CpuWindow(srv, lgs)
        go.touch()
        for lg in lgs:
            lg.go(t0)
        t1 = max(lg.done(cfg.duration + 180) for lg in lgs)
        cpu1, other = srv.cpu_seconds(), window.other_pct()
        lag = loop_lag(srv, scenario, "", t0, t1)
        results = [lg.result() for lg in lgs]
    seconds = max(r["t_end"] for r in results) - t0
    expected = sum(r["expected"] for r in results)
    received = sum(r["received"] for r in results)
    errors = sum(r["seq_errors"] + r["malformed"] + r["duplicated"] for r in results)
    p50, p99 = max(r["p50_ms"] for r in results), max(r["p99_ms"] for r in results)
    client_cpu = sum(r["client_cpu_s"] for r in results) / seconds * 100
    server_cpu = (cpu1 - cpu0) / (t1 - t0) * 100
    cfg.log(
        f"  {scenario}: {received:,}/{expected:,} lines in {seconds:.1f} s, p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, server CPU {server_cpu:.0f}%, client CPU {client_cpu:.0f}%, "
        f"errors {errors}, other processes {other:.0f}%"
    )
    return [
        Metric(scenario, "delivered", received / max(1, expected) * 100, "%", Target("==", 100)),
        Metric(scenario, "lines/s delivered (all connections)", received / seconds, "lines/s"),
        Metric(scenario, "latency p50 (write -> receipt)", p50, "ms"),
        Metric(scenario, "latency p99 (write -> receipt)", p99, "ms", Target("<=", p99_target)),
        Metric(scenario, "latency max", max(r["max_ms"] for r in results), "ms"),
        Metric(scenario, "lines lost", sum(r["lost"] for r in results), "lines", Target("==", 0)),
        Metric(scenario, "seq/line errors", errors, "count", Target("==", 0)),
        Metric(scenario, "server CPU", server_cpu, "% core"),
        Metric(scenario, "load generator CPU", client_cpu, "% core"),
        Metric(scenario, "other processes' CPU", other, "% core"),
    ] + lag


def scenario_mux_500(cfg: Config) -> list[Metric]:
    return _mux(cfg, "mux-500", 1, 50)


def scenario_mux_500x100(cfg: Config) -> list[Metric]:
    return _mux(cfg, "mux-500x100", cfg.mux_connections, 50)


def _idle_rss(cfg: Config, kind: str) -> Metric:
    """RSS with n idle followers minus RSS with none, over n. A few warm-up followers stay
    connected throughout, so one-time costs (first connection, imports) fall outside the delta."""
    n, warm_n = cfg.clients, 20
    with server(cfg, f"memory-{kind}") as srv:
        job = srv.post_job(["sleep", "3600"])
        warm = Loadgen(srv, "idle", "--job", job["id"], "--kind", kind, "--clients", str(warm_n))
        warm.expect("ready", 60)
        time.sleep(1.0)
        rss0 = srv.rss_kib()
        lg = Loadgen(srv, "idle", "--job", job["id"], "--kind", kind, "--clients", str(n))
        lg.expect("ready", 120)
        time.sleep(1.0)
        connected = srv.api("GET", "/stats")["clients"]["total"]
        rss1 = srv.rss_kib()
        for g in (lg, warm):
            g.go(time.time())
            g.result()
        with contextlib.suppress(BenchError):
            srv.api("POST", f"/jobs/{job['id']}/cancel")
    if connected != n + warm_n:
        raise BenchError(f"memory {kind}: the server counted {connected} clients, not {n + warm_n}")
    cfg.log(f"  memory {kind}: RSS {rss0} KiB -> {rss1} KiB with {n} more idle clients")
    label = "SSE" if kind == "sse" else "WebSocket"
    return Metric(
        "memory",
        f"RSS per idle {label} follower",
        (rss1 - rss0) * 1.024 / n,  # KB, as the target is written
        "KB",
        Target("<=", 20),
    )


def scenario_memory(cfg: Config) -> list[Metric]:
    return [_idle_rss(cfg, "sse"), _idle_rss(cfg, "ws")]


def _pct(values: list[float], p: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(len(xs) * p / 100) - 1))]


def scenario_ttfb(cfg: Config) -> list[Metric]:
    with server(cfg, "ttfb") as srv:
        lg = Loadgen(srv, "ttfb", "--n", str(cfg.ttfb_n))
        lg.expect("ready", 60)
        lg.go(time.time())
        lg.done(cfg.ttfb_n * 2 + 60)
        res = lg.result()
    cfg.log(
        f"  ttfb: SSE after POST p50 {_pct(res['sse'], 50):.2f} ms, "
        f"firehose p50 {_pct(res['firehose'], 50):.2f} ms"
    )
    return [
        Metric(
            "ttfb",
            "POST -> first byte, SSE opened after POST: p50",
            _pct(res["sse"], 50),
            "ms",
            Target("<=", 10),
        ),
        Metric(
            "ttfb", "POST -> first byte, SSE opened after POST: p99", _pct(res["sse"], 99), "ms"
        ),
        Metric(
            "ttfb",
            "POST -> first byte, /stream?output=1 open before: p50",
            _pct(res["firehose"], 50),
            "ms",
        ),
        Metric(
            "ttfb",
            "POST -> first byte, /stream?output=1 open before: p99",
            _pct(res["firehose"], 99),
            "ms",
        ),
        Metric("ttfb", "POST /jobs response: p50", _pct(res["post"], 50), "ms"),
        Metric(
            "ttfb", "of which POST sent -> job started_at: p50", _pct(res["to_started"], 50), "ms"
        ),
        Metric(
            "ttfb",
            "of which started_at -> first output event ts: p50",
            _pct(res["started_to_event"], 50),
            "ms",
        ),
        Metric(
            "ttfb",
            "of which output event ts -> firehose client: p50",
            _pct(res["event_to_firehose"], 50),
            "ms",
        ),
    ]


def _resume_ms(srv: Server, job: dict[str, Any], n: int) -> list[float]:
    lg = Loadgen(
        srv, "resume", "--job", job["id"], "--after", str(job["last_seq"] - 5), "--n", str(n)
    )
    lg.expect("ready", 60)
    lg.go(time.time())
    lg.done(n * 10 + 60)
    ms: list[float] = lg.result()["ms"]
    return ms


def scenario_resume(cfg: Config) -> list[Metric]:
    data_dir = cfg.out / "data" / "resume"
    srv = Server(cfg, data_dir)
    try:
        go = data_dir / "go"
        go.touch()
        job = srv.post_job(producer("bulk", "--bytes", str(cfg.bulk_bytes), "--go", str(go)))
        job = srv.wait_job(job["id"], 600)
        warm = _resume_ms(srv, job, cfg.resume_n)
        srv.stop()
        srv = Server(cfg, data_dir, fresh=False)
        cold = _resume_ms(srv, job, cfg.resume_n)
    finally:
        srv.stop()
        if not cfg.verbose:
            shutil.rmtree(data_dir, ignore_errors=True)
    cfg.log(
        f"  resume: {job['last_seq']} events; warm p50 {_pct(warm, 50):.2f} ms; "
        f"after restart first {cold[0]:.2f} ms, p50 {_pct(cold, 50):.2f} ms"
    )
    return [
        Metric(
            "resume", f"events in the {cfg.bulk_bytes >> 20} MiB log", job["last_seq"], "events"
        ),
        Metric(
            "resume",
            "Last-Event-ID=last-5 -> first event: p50",
            _pct(warm, 50),
            "ms",
            Target("<=", 20),
        ),
        Metric("resume", "Last-Event-ID=last-5 -> first event: max", max(warm), "ms"),
        Metric("resume", "after a server restart: first try", cold[0], "ms"),
        Metric("resume", "after a server restart: p50", _pct(cold, 50), "ms"),
    ]


#: five extractors as a CI job might set them: each scans every line, few lines match
BENCH_EXTRACTORS = [
    {"name": "passed", "pattern": r"(\d+) passed"},
    {"name": "error", "pattern": r"^ERROR:? (.*)"},
    {"name": "version", "pattern": r"version (\d+(?:\.\d+)+)"},
    {"name": "slow", "pattern": r"took=(99\.99\d)ms"},
    {"name": "rare_id", "pattern": r"id=(0000[0-9a-f]{12})"},
]
#: the server without any finding: no progress detection, and the jobs have no extractors
NO_FINDINGS = {"JOBCAST_DETECT_PROGRESS": "false"}


#: the extract-bulk modes: the server's env, the job's extractors, the figure's label
_EXTRACT_MODES = {
    "off": (NO_FINDINGS, False, "no extractors, no progress"),
    "progress": ({}, False, "progress only (the default)"),
    "on": ({}, True, "5 extractors + progress"),
}


def scenario_extract_bulk(cfg: Config) -> list[Metric]:
    """Bulk over SSE with 5 extractors and progress detection, with progress detection alone
    (what every job gets by default), and with neither; each twice, interleaved, in one run."""
    mbps: dict[str, list[float]] = {mode: [] for mode in _EXTRACT_MODES}
    out: list[Metric] = []
    for mode in [*_EXTRACT_MODES, *reversed(_EXTRACT_MODES)]:
        env, extract, label = _EXTRACT_MODES[mode]
        run_cfg = replace(cfg, server_env={**cfg.server_env, **env})
        with server(run_cfg, f"extract-bulk-{mode}") as srv:
            go = srv.data_dir / "go"
            argv = producer("bulk", "--bytes", str(cfg.bulk_bytes), "--go", str(go))
            job = srv.post_job(argv, **({"extract": BENCH_EXTRACTORS} if extract else {}))
            lg = Loadgen(srv, "bulk", "--job", job["id"], "--kind", "sse", "--timeout", "600")
            lg.expect("ready", 60)
            cpu0, t0 = srv.cpu_seconds(), time.time()
            go.touch()
            lg.go(t0)
            t1 = lg.done(660)
            cpu1 = srv.cpu_seconds()
            res = lg.result()
            if res["output_bytes"] != cfg.bulk_bytes:
                raise BenchError(f"extract-bulk {mode}: received {res} of {cfg.bulk_bytes} bytes")
        rate = cfg.bulk_bytes / 1e6 / res["seconds"]
        mbps[mode].append(rate)
        out += [
            Metric("extract-bulk", f"SSE, {label}", rate, "MB/s"),
            Metric(
                "extract-bulk", f"{label}: server CPU", (cpu1 - cpu0) / (t1 - t0) * 100, "% core"
            ),
        ]
        cfg.log(f"  extract-bulk {mode}: {rate:.0f} MB/s")
    off = sum(mbps["off"])
    out += [
        Metric("extract-bulk", "on / off", sum(mbps["on"]) / off, "ratio", Target(">=", 0.7)),
        Metric("extract-bulk", "progress only / off", sum(mbps["progress"]) / off, "ratio"),
    ]
    return out


def scenario_extract_fanout(cfg: Config) -> list[Metric]:
    """1,000 SSE followers x 1k lines/s, 5 extractors and progress on, then off, in one run."""
    on = _fanout(cfg, "extract-fanout-on", "sse", cfg.clients, 1000, 80, extract=BENCH_EXTRACTORS)
    off_cfg = replace(cfg, server_env={**cfg.server_env, **NO_FINDINGS})
    off = _fanout(off_cfg, "extract-fanout-off", "sse", cfg.clients, 1000, 80)
    p99 = {m.scenario: m.value for m in on + off if m.name == "latency p99"}
    ratio = p99["extract-fanout-on"] / max(p99["extract-fanout-off"], 1e-9)
    return [*on, *off, Metric("extract-fanout", "p99 on / off", ratio, "ratio", Target("<=", 1.1))]


SCENARIOS: dict[str, Callable[[Config], list[Metric]]] = {
    "bulk": scenario_bulk,
    "resume": scenario_resume,
    "fanout-sse": scenario_fanout_sse,
    "fanout-ws": scenario_fanout_ws,
    "fanout-10k-sse": scenario_fanout_10k_sse,
    "fanout-10k-ws": scenario_fanout_10k_ws,
    "memory": scenario_memory,
    "ttfb": scenario_ttfb,
    "pty-viewers": scenario_pty_viewers,
    "mux-500": scenario_mux_500,
    "mux-500x100": scenario_mux_500x100,
    "extract-bulk": scenario_extract_bulk,
    "extract-fanout": scenario_extract_fanout,
}
GROUPS = {"fanout": [s for s in SCENARIOS if s.startswith("fanout")], "all": list(SCENARIOS)}


# --------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _fmt(x: float) -> str:
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def table(metrics: list[Metric], errors: dict[str, list[str]]) -> str:
    groups: dict[tuple[str, str], list[Metric]] = {}
    for m in metrics:
        groups.setdefault((m.scenario, m.name), []).append(m)
    rows = [
        "| scenario | figure | median | min | max | unit | runs | target | met |",
        "|---|---|---:|---:|---:|---|---:|---|---|",
    ]
    for (scenario, name), ms in groups.items():
        values = [m.value for m in ms]
        med = statistics.median(values)
        target = ms[0].target
        met = "" if target is None else ("yes" if target.met(med) else "**NO**")
        rows.append(
            f"| {scenario} | {name} | {_fmt(med)} | {_fmt(min(values))} | {_fmt(max(values))} "
            f"| {ms[0].unit} | {len(values)} | {target or ''} | {met} |"
        )
    for scenario, errs in errors.items():
        rows.append(
            f"| {scenario} | **failed in {len(errs)} run(s)** | | | | | | | {errs[0][:200]} |"
        )
    return "\n".join(rows)


def report(
    cfg: Config, argv: list[str], metrics: list[Metric], errors: dict[str, list[str]], secs: float
) -> str:
    m = machine()
    return "\n".join(
        [
            f"Machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
            f"Python {m['python']}; {m['date']}.",
            f"Command: `{' '.join(['.venv/bin/python', 'bench/run.py', *argv])}` "
            f"({cfg.runs} run(s), {secs / 60:.1f} min; server on CPU {SERVER_CPU}, "
            f"load generator and jobs on CPU {CLIENT_CPU})",
            "",
            table(metrics, errors),
        ]
    )


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of: {', '.join([*SCENARIOS, *GROUPS])} (default: all)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        help="runs of each scenario; figures are medians (default 5; --quick: 1)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short smoke version: 1 run, 3 s fan-out runs, 256 MiB bulk, fewer tries",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds each fan-out producer runs (default 15; --quick: 3)"
    )
    parser.add_argument(
        "--bulk-bytes", type=int, help="bytes the bulk job writes (default 1 GiB; --quick: 256 MiB)"
    )
    parser.add_argument(
        "--clients", type=int, default=1000, help="clients of the 1k lines/s fan-outs and memory"
    )
    parser.add_argument(
        "--clients-10k", type=int, default=500, help="clients of the 10k lines/s fan-outs"
    )
    parser.add_argument(
        "--mux-jobs", type=int, default=500, help="jobs followed in the /ws (mux-) scenarios"
    )
    parser.add_argument(
        "--mux-connections", type=int, default=100, help="/ws connections of mux-500x100"
    )
    parser.add_argument(
        "--procs",
        type=int,
        default=1,
        help="load generator processes per fan-out scenario (all on CPU 1)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where raw results, logs and data go (default: a temp dir; "
        "results are copied to bench/out/)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each scenario, wait up to this many seconds for other processes to calm down "
        "(the machine may be shared; 0: do not wait)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help=f"run a scenario again (up to this many times) if other processes used more than "
        f"{BUSY_PCT}%% of a core while it ran",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set this in the server's environment (repeatable), e.g. a JOBCAST_ setting or "
        "GLIBC_TUNABLES, to compare",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' data and logs")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def selected(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names or ["all"]:
        if name not in SCENARIOS and name not in GROUPS:
            raise SystemExit(
                f"unknown scenario {name!r}; choose from {', '.join([*SCENARIOS, *GROUPS])}"
            )
        for s in GROUPS.get(name, [name]):
            if s not in out:
                out.append(s)
    return sorted(out, key=list(SCENARIOS).index)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    if a.list:
        print("\n".join(SCENARIOS))
        return
    names = selected(a.scenarios)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit(
            "the benchmarks pin the server and the load generator to CPUs 0 and 1: need 2 CPUs"
        )
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {int(CLIENT_CPU)})  # keep the driver off the server's CPU
    # SIGTERM unwinds like Ctrl-C, so every server and load generator started is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    raise_nofile()
    out = a.out or Path(tempfile.mkdtemp(prefix="jobcast-bench-"))
    cfg = Config(
        runs=a.runs or (1 if a.quick else 5),
        quick=a.quick,
        duration=a.duration or (3.0 if a.quick else 15.0),
        bulk_bytes=a.bulk_bytes or (256 << 20 if a.quick else GIB),
        clients=a.clients,
        clients_10k=a.clients_10k,
        ttfb_n=50 if a.quick else 200,
        resume_n=10 if a.quick else 50,
        procs=a.procs,
        quiet_wait=a.quiet_wait,
        retries=a.retries,
        server_env=dict(kv.split("=", 1) for kv in a.server_env),
        out=out,
        verbose=a.keep,
        mux_jobs=a.mux_jobs,
        mux_connections=a.mux_connections,
    )
    start = time.monotonic()
    try:
        metrics, errors = run_all(cfg, names)
    finally:
        if not a.keep and a.out is None:
            shutil.rmtree(out, ignore_errors=True)
    text = report(cfg, argv, metrics, errors, time.monotonic() - start)
    print(text)
    save(cfg, text)


def run_all(cfg: Config, names: list[str]) -> tuple[list[Metric], dict[str, list[str]]]:
    """Every run of every scenario; Ctrl-C stops early and keeps what was measured."""
    metrics: list[Metric] = []
    errors: dict[str, list[str]] = {}
    try:
        for run in range(cfg.runs):
            for name in names:
                cfg.log(f"run {run + 1}/{cfg.runs}: {name}")
                try:
                    got = run_scenario(cfg, name)
                except Exception as e:  # one scenario failing should not lose the others' figures
                    cfg.log(f"  {name} FAILED: {e!r}")
                    errors.setdefault(name, []).append(str(e))
                    continue
                metrics += got
                cfg.records.append(
                    {
                        "run": run + 1,
                        "scenario": name,
                        "metrics": [m.__dict__ | {"target": str(m.target or "")} for m in got],
                    }
                )
    except KeyboardInterrupt:
        cfg.log("interrupted: reporting the runs done so far")
    return metrics, errors


def run_scenario(cfg: Config, name: str) -> list[Metric]:
    """Run it once; again (up to cfg.retries times) if other processes took a lot of CPU meanwhile."""
    for attempt in range(cfg.retries + 1):
        if cfg.quiet_wait > 0:
            wait_quiet(cfg)
        watch = MachineWatch()
        got = SCENARIOS[name](cfg)
        other = watch.other_pct()
        if other <= BUSY_PCT or attempt == cfg.retries:
            break
        cfg.log(f"  other processes used {other:.0f}% of a core meanwhile: running {name} again")
    if other > BUSY_PCT:
        cfg.log(f"  WARNING: other processes used {other:.0f}% of a core during {name}")
    return [*got, Metric(name, "other processes' CPU meanwhile (shared machine)", other, "% core")]


def save(cfg: Config, text: str) -> None:
    dest = BENCH / "out"
    dest.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (dest / f"results-{stamp}.json").write_text(
        json.dumps({"machine": machine(), "records": cfg.records}, indent=1)
    )
    (dest / f"results-{stamp}.md").write_text(text + "\n")
    cfg.log(f"raw figures in bench/out/results-{stamp}.json, table in bench/out/results-{stamp}.md")


if __name__ == "__main__":
    main()
