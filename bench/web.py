"""The web UI in headless Chromium (Playwright, Debian's chromium), measured in the page itself:

- latency: a job prints timestamped lines (`time.time()` at the write), and a MutationObserver
  on xterm's rows compares each line's stamp with the page's clock when the line is rendered
  (the same machine, so the same clock): p50/p99/max;
- bulk: a job writes 100,000 lines of 80 bytes at once; the time from its first write until its
  last line is rendered in the terminal, then the page's JS heap (CDP, after a GC); and the
  same job, finished, opened in a fresh tab: from the navigation until its last line is drawn;
- weight: the JS and CSS each page names, as served (gzip) and raw;
- first render: a fresh tab on `/` (nothing cached): first contentful paint, and the job list
  drawn, from the navigation's start.

    .venv/bin/python bench/web.py [--runs 3] [--lines 200] [--bulk-lines 100000]

Run by hand (not part of `make bench`). The server is this checkout's, pinned to CPU 0, without
auth (bench/cli.py's); the browser is not pinned. Prints a Markdown table for bench/RESULTS.md
and writes the raw figures to bench/out/web.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, CDPSession, Page, sync_playwright

from cli import server

BENCH = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"

# The job's side: wait for the page (a flag file), then write. `L seq stamp` lines one by one;
# or all the bulk at once, then `END first_write_stamp last_write_stamp`.
LATENCY_JOB = """
import os, sys, time
flag, n, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while not os.path.exists(flag): time.sleep(0.005)
for i in range(n):
    sys.stdout.write(f"L {i} {time.time():.6f}\\n"); sys.stdout.flush(); time.sleep(gap)
"""
BULK_JOB = """
import os, sys, time
flag, n = sys.argv[1], int(sys.argv[2])
body = "".join(f"{i:07d} " + "x" * 72 + "\\n" for i in range(n))
while not os.path.exists(flag): time.sleep(0.005)
t0 = time.time()
sys.stdout.write(body); sys.stdout.flush()
sys.stdout.write(f"END {t0:.6f} {time.time():.6f}\\n"); sys.stdout.flush()
"""

# In the page: every row xterm renders is read once it changes; `L` lines give a latency each,
# the `END` line the bulk's end. performance.timeOrigin + now() is the epoch in ms, to the us.
OBSERVE = r"""() => {
  const rows = document.querySelector('.xterm-rows');
  const b = (window.__bench = { lat: [], seen: new Set(), end: null });
  const scan = () => {
    const t = performance.timeOrigin + performance.now();
    for (const div of rows.children) {
      const s = div.textContent || '';
      let m = /^L\s(\d+)\s(\d+\.\d+)/.exec(s);
      if (m) {
        if (!b.seen.has(m[1])) { b.seen.add(m[1]); b.lat.push(t - parseFloat(m[2]) * 1000); }
        continue;
      }
      m = /^END\s(\d+\.\d+)\s(\d+\.\d+)/.exec(s);
      if (m && b.end === null) b.end = { at: t, first: parseFloat(m[1]) * 1000, last: parseFloat(m[2]) * 1000 };
    }
  };
  new MutationObserver(scan).observe(rows, { childList: true, subtree: true, characterData: true });
}"""

# Checked at each frame: when the END line is first drawn, in ms from the navigation's start.
REPLAYED = """() => [...document.querySelectorAll('.xterm-rows > div')]
  .some(d => /^END\\s/.test(d.textContent || '')) && performance.now()"""

# Before any of the page's scripts: when the list is first drawn (rows, or its empty row).
MARK_LIST = """
window.__marks = {};
new MutationObserver(() => {
  if (!window.__marks.list && document.querySelector('tr[data-job], td.empty'))
    window.__marks.list = performance.now();
}).observe(document, { childList: true, subtree: true });
"""


def post_job(url: str, argv: list[str]) -> str:
    req = urllib.request.Request(
        url + "/jobs",
        data=json.dumps({"argv": argv}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["id"])


def open_job(browser: Browser, url: str, job: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{url}/#/jobs/{job}")
    page.wait_for_selector(".xterm-rows")
    page.evaluate(OBSERVE)
    return page


def latency(browser: Browser, url: str, tmp: Path, lines: int, gap: float) -> dict[str, float]:
    flag = tmp / f"go-{time.monotonic_ns()}"
    job = post_job(url, [sys.executable, "-c", LATENCY_JOB, str(flag), str(lines), str(gap)])
    page = open_job(browser, url, job)
    flag.touch()
    page.wait_for_function(
        "n => window.__bench.lat.length >= n", arg=lines, timeout=lines * gap * 1000 + 60_000
    )
    lat = sorted(page.evaluate("() => window.__bench.lat"))
    page.context.close()
    return {
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, round(len(lat) * 0.99))],
        "max_ms": lat[-1],
    }


def heap(cdp: CDPSession) -> tuple[int, int]:
    """The JS heap in use after a GC, and the ArrayBuffers' memory outside it (xterm's buffer
    lines are typed arrays)."""
    cdp.send("HeapProfiler.collectGarbage")
    usage = cdp.send("Runtime.getHeapUsage")
    return int(usage["usedSize"]), int(usage.get("backingStorageSize", 0))


def bulk(browser: Browser, url: str, tmp: Path, lines: int) -> dict[str, float]:
    flag = tmp / f"go-{time.monotonic_ns()}"
    job = post_job(url, [sys.executable, "-c", BULK_JOB, str(flag), str(lines)])
    page = open_job(browser, url, job)
    cdp = page.context.new_cdp_session(page)
    before = heap(cdp)
    flag.touch()
    page.wait_for_function("() => window.__bench.end !== null", timeout=600_000)
    end = page.evaluate("() => window.__bench.end")
    after = heap(cdp)
    page.context.close()
    # The same job again, finished, in a fresh tab: the page replays it from the start.
    again = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    again.goto(f"{url}/#/jobs/{job}")
    replayed = again.wait_for_function(REPLAYED, polling="raf", timeout=600_000).json_value()
    again.context.close()
    return {
        "replay_ms": float(replayed),
        "write_ms": end["last"] - end["first"],
        "rendered_ms": end["at"] - end["first"],
        "heap_before_mib": before[0] / 2**20,
        "heap_after_mib": after[0] / 2**20,
        "buffers_before_mib": before[1] / 2**20,
        "buffers_after_mib": after[1] / 2**20,
    }


def first_render(browser: Browser, url: str) -> dict[str, float]:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.add_init_script(MARK_LIST)
    page.goto(url + "/")
    page.wait_for_function("() => window.__marks.list !== undefined")
    # the paint's entry comes after the frame that painted the list: waited for
    fcp = page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
    ).json_value()
    listed = page.evaluate("() => window.__marks.list")
    page.context.close()
    return {"fcp_ms": fcp, "list_ms": listed}


def weight(url: str) -> dict[str, dict[str, int]]:
    """Bytes of each page's JS and CSS: as the server sends them gzipped, and raw."""
    out: dict[str, dict[str, int]] = {}
    for page in ("/", "/docs"):
        with urllib.request.urlopen(url + page) as resp:
            html = resp.read().decode()
        for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
            req = urllib.request.Request(url + asset, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(req) as resp:
                sent = resp.read()
                zipped = resp.headers.get("Content-Encoding") == "gzip"
            raw = gzip.decompress(sent) if zipped else sent
            kind = f"{page} {asset.rsplit('.', 1)[1]}"
            out[kind] = {"gzip": len(sent), "raw": len(raw)}
    return out


def median(runs: list[dict[str, float]], key: str, digits: int = 0) -> str:
    values = [r[key] for r in runs]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=200, help="timestamped lines per run")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between them")
    parser.add_argument("--bulk-lines", type=int, default=100_000)
    args = parser.parse_args()
    load: list[tuple[float, float, float]] = [os.getloadavg()]
    results: dict[str, Any] = {"lat": [], "bulk": [], "first": []}
    with tempfile.TemporaryDirectory() as d, server(Path(d) / "data") as url:
        results["weight"] = weight(url)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
                ("first", lambda: first_render(browser, url)),
                ("lat", lambda: latency(browser, url, Path(d), args.lines, args.gap)),
                ("bulk", lambda: bulk(browser, url, Path(d), args.bulk_lines)),
            ]
            for run in range(args.runs):
                for key, step in steps:
                    results[key].append(step())
                    print(f"run {run + 1} {key}: {results[key][-1]}", file=sys.stderr)
                load.append(os.getloadavg())
            browser.close()
    results["load"] = load
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "web.json").write_text(json.dumps(results, indent=2))
    lat, big, first = results["lat"], results["bulk"], results["first"]
    print(f"| figure | median (min-max), {args.runs} runs |\n|---|---|")
    print(
        f"| line write -> rendered, p50 ms ({args.lines} lines, {args.gap}s apart) | {median(lat, 'p50_ms')} |"
    )
    print(f"| line write -> rendered, p99 ms | {median(lat, 'p99_ms')} |")
    print(f"| line write -> rendered, max ms | {median(lat, 'max_ms')} |")
    print(f"| {args.bulk_lines:,} lines: the job's write, ms | {median(big, 'write_ms')} |")
    print(
        f"| {args.bulk_lines:,} lines: first write -> last rendered, ms | {median(big, 'rendered_ms')} |"
    )
    print(
        f"| the same job finished, in a fresh tab: navigation -> last rendered, ms | "
        f"{median(big, 'replay_ms')} |"
    )
    print(f"| JS heap before the bulk, MiB | {median(big, 'heap_before_mib', 1)} |")
    print(f"| JS heap after it (after a GC), MiB | {median(big, 'heap_after_mib', 1)} |")
    print(
        f"| ArrayBuffers before / after, MiB | {median(big, 'buffers_before_mib', 1)} / {median(big, 'buffers_after_mib', 1)} |"
    )
    print(f"| first contentful paint, ms | {median(first, 'fcp_ms')} |")
    print(f"| job list drawn, ms | {median(first, 'list_ms')} |")
    for kind, size in results["weight"].items():
        print(
            f"| `{kind}`: gzip / raw KiB | {size['gzip'] / 1024:.0f} / {size['raw'] / 1024:.0f} |"
        )
    print(f"\nload average (1, 5, 15 min) before and after each run: {load}")


if __name__ == "__main__":
    main()
