"""The policy on the hot path of `POST /jobs`: the check and template expansion alone
(in-process), and the POST's latency on a real server, a template against a raw command, in
alternation over one kept-alive connection (auth off, the trace appended for both).

    .venv/bin/python bench/policy.py
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from jobcast.models import JobSpec
from jobcast.policy import Policy, PolicyConfig
from jobcast.templates import Template

CONFIG = """
[policy]
deny = ["rm -rf /*", "* --force*"]
allow = ["true*", "echo *"]
[templates.t]
command = ["true", "--n={n}", "{path}"]
params.path = { type = "string", pattern = "^[\\\\w./-]+$" }
params.n = { type = "integer", minimum = 1, maximum = 9, default = 1 }
"""


def micro() -> None:
    t = Template.model_validate(
        {
            "command": ["true", "--n={n}", "{path}"],
            "params": {
                "path": {"type": "string", "pattern": r"^[\w./-]+$"},
                "n": {"type": "integer", "minimum": 1, "maximum": 9, "default": 1},
            },
        }
    )
    policy = Policy.build(
        PolicyConfig(deny=["rm -rf /*", "* --force*"], allow=["true*", "echo *"]), {"t": t}
    )
    raw = {"argv": ["true", "--n=1", "tests/"]}
    tmpl = {"template": "t", "args": {"path": "tests/"}}
    for name, body in (("raw argv", raw), ("template", tmpl)):
        n = 20_000
        start = time.perf_counter()
        for _ in range(n):
            JobSpec.model_validate(body)
        parse = (time.perf_counter() - start) / n
        spec = JobSpec.model_validate(body)
        start = time.perf_counter()
        for _ in range(n):
            policy.check(spec, None, 0)
            policy.resolve(spec)
        cost = (time.perf_counter() - start) / n
        print(f"{name}: parse {parse * 1e6:.1f} us, check + resolve {cost * 1e6:.1f} us")


def served(rounds: int = 300) -> None:
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "jobcast.toml"
        cfg.write_text(CONFIG)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [sys.executable, "-m", "jobcast", "serve", "--port", str(port)]
        argv += ["--data-dir", f"{d}/data", "--config", str(cfg), "--log-level", "warning"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30) as api:
                for _ in range(200):
                    try:
                        api.get("/status")
                        break
                    except httpx.TransportError:
                        time.sleep(0.05)
                bodies = {
                    "raw": json.dumps({"argv": ["true", "--n=1", "tests/"]}),
                    "template": json.dumps({"template": "t", "args": {"path": "tests/"}}),
                }
                times: dict[str, list[float]] = {k: [] for k in bodies}
                headers = {"Content-Type": "application/json"}
                for i in range(rounds):
                    for k in ("raw", "template") if i % 2 else ("template", "raw"):
                        start = time.perf_counter()
                        r = api.post("/jobs", content=bodies[k], headers=headers)
                        times[k].append(time.perf_counter() - start)
                        assert r.status_code == 201, r.text
        finally:
            proc.terminate()
            proc.wait(60)
    for k, ts in times.items():
        q = statistics.quantiles(ts, n=100)
        print(f"POST /jobs {k}: p50 {q[49] * 1e3:.2f} ms, p99 {q[98] * 1e3:.2f} ms ({rounds})")


if __name__ == "__main__":
    micro()
    served()
