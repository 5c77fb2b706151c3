"""CLI start-up: wall time of `jobcast --version`, `ls`, `show JOB`, `run -- true` against a local
server, the median of --runs calls each (after one call not counted, which warms the page cache).

    .venv/bin/python bench/cli.py [--runs 10] [--src DIR]

`--src DIR` times the `jobcast` of another checkout's `src` (PYTHONPATH=DIR, so the same
console script imports that code): how the before/after figures in bench/RESULTS.md were taken.
The server is always this checkout's, pinned to CPU 0; the CLI runs on CPU 1 with its output in
a pipe, as in a script or a shell's `$(...)`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
JOBCAST = str(Path(PY).with_name("jobcast"))
#: what each figure is held against (ms, median), from issue 12
TARGETS = {"--version": 150.0, "ls": 300.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _taskset(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


@contextlib.contextmanager
def server(data_dir: Path) -> Iterator[str]:
    """A `jobcast serve` of this checkout on a free port; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        *_taskset("0"), PY, "-m", "jobcast", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "JOBCAST_AUTH": "none", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/status", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start ({proc.poll()})") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _post_job(url: str, argv: list[str], name: str | None = None) -> str:
    body = json.dumps({"argv": argv, **({"name": name} if name else {})}).encode()
    req = urllib.request.Request(
        url + "/jobs", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["id"])


def time_command(
    args: list[str], env: dict[str, str], runs: int, program: str = JOBCAST
) -> list[float]:
    """Wall milliseconds of each of `runs` calls, after one call that is not counted."""
    argv = [*_taskset("1"), program, *args]
    took: list[float] = []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        ms = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise SystemExit(f"`jobcast {' '.join(args)}` failed: {done.stderr.decode()[-500:]}")
        if i:
            took.append(ms)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="calls per command (default 10)")
    parser.add_argument("--src", type=Path, help="time the jobcast under this `src` directory")
    a = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    if a.src is not None:
        env["PYTHONPATH"] = str(a.src.resolve())
    with tempfile.TemporaryDirectory(prefix="jobcast-bench-cli-") as tmp, server(Path(tmp)) as url:
        env["JOBCAST_URL"] = url
        # a list worth printing: 50 finished jobs, as `ls` shows by default
        for _ in range(49):
            _post_job(url, ["true"])
        job = _post_job(url, ["echo", "hello"], name="bench")
        time.sleep(0.5)
        commands = {
            "--version": ["--version"],
            "ls": ["ls"],
            "show JOB": ["show", job],
            "run -- true": ["run", "--", "true"],
        }
        print("| command | median ms | min | max | target |\n|---|---|---|---|---|")
        # the floor under every figure: the interpreter (with this venv's site), and click
        floors = {
            "python -c pass": ["-c", "pass"],
            "python -c 'import click'": ["-c", "import click"],
        }
        for label, args in floors.items():
            took = time_command(args, env, a.runs, program=PY)
            print(
                f"| `{label}` (floor) | {statistics.median(took):.0f} | {min(took):.0f} "
                f"| {max(took):.0f} | |",
                flush=True,
            )
        for label, args in commands.items():
            took = time_command(args, env, a.runs)
            target = TARGETS.get(label)
            verdict = "" if target is None else f"<= {target:.0f}"
            if target is not None:
                verdict += " met" if statistics.median(took) <= target else " MISSED"
            print(
                f"| `jobcast {label}` | {statistics.median(took):.0f} | {min(took):.0f} "
                f"| {max(took):.0f} | {verdict} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
