"""Extractors and progress on a real server: `extraction` and `progress` events in the job's log,
the job's `extracted` and `progress`, bad patterns refused, a pathological one harmless."""

from __future__ import annotations

import asyncio
import sys

import httpx
import orjson

from tests.conftest import wait_job
from tests.helpers import collect_sse, output_of

EXTRACTORS = [
    {"name": "passed", "pattern": r"(\d+) passed"},
    {"name": "failed", "pattern": r"(\d+) failed", "stream": "stdout"},
    {"name": "url", "pattern": r"https?://\S+"},
    {"name": "version", "pattern": r"version (?P<value>\d+(?:\.\d+)+)", "once": True},
    {"name": "warning", "pattern": r"^WARNING: (.*)$", "stream": "stderr"},
]

# A pytest-like summary, a URL, a version (twice: `once` keeps the first), a line written in two
# parts with a pause between them, a `\r` progress line, coloured text, a warning on stderr.
SCRIPT = r"""
import sys, time
out = sys.stdout
out.write("collected 7 items\n")
out.write("serving on http://127.0.0.1:8000/app now\n")
out.write("version 2.4.1\n"); out.flush()
out.write("==== 5 pass"); out.flush()
time.sleep(0.3)
out.write("ed, 2 failed in 0.12s ====\n"); out.flush()
for i in range(0, 101, 25):
    out.write(f"\rdownloading {i} passed"); out.flush(); time.sleep(0.05)
out.write("\n")
out.write("\x1b[32mversion 9.9.9\x1b[0m\n")
sys.stderr.write("WARNING: disk almost full\n"); sys.stderr.flush()
"""


def _events(api: httpx.Client, job_id: str) -> list[dict]:
    r = api.get(f"/jobs/{job_id}/events", params={"after": 0})
    return [orjson.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]


def test_extractions_of_summary_url_version_split_line_and_rewrites(api):
    r = api.post(
        "/jobs",
        json={"argv": [sys.executable, "-c", SCRIPT], "extract": EXTRACTORS},
    )
    assert r.status_code == 201, r.text
    job = wait_job(api, r.json()["id"])
    assert job["status"] == "succeeded"
    events = _events(api, job["id"])
    got = [
        (e["data"]["name"], e["data"]["value"], e["data"]["line_no"], e["data"]["stream"])
        for e in events
        if e["type"] == "extraction"
    ]
    assert got == [
        ("url", "http://127.0.0.1:8000/app", 2, "stdout"),
        ("version", "2.4.1", 3, "stdout"),
        # Joined across the two writes, and matched once.
        ("passed", "5", 4, "stdout"),
        ("failed", "2", 4, "stdout"),
        # The `\r` line counts once, at its final form.
        ("passed", "100", 5, "stdout"),
        ("warning", "disk almost full", 7, "stderr"),
    ]
    split = next(
        e["data"] for e in events if e["type"] == "extraction" and e["data"]["line_no"] == 4
    )
    assert split["line"] == "==== 5 passed, 2 failed in 0.12s ===="
    assert split["groups"] == ["5"]
    assert job["extracted"] == {
        "url": "http://127.0.0.1:8000/app",
        "version": "2.4.1",
        "passed": "100",
        "failed": "2",
        "warning": "disk almost full",
    }
    # Every extraction comes after the output it was found in, and before `complete`.
    types = [e["type"] for e in events]
    assert types[-1] == "complete"
    assert types.index("extraction") > types.index("stdout")


def test_pty_lines_are_matched_without_escapes(api):
    command = r"printf '\033[1;31mERROR\033[0m: code \033[4m42\033[0m\n'"
    r = api.post(
        "/jobs",
        json={
            "command": command,
            "pty": True,
            "extract": [{"name": "e", "pattern": r"^ERROR: code (\d+)$"}],
        },
    )
    job = wait_job(api, r.json()["id"])
    assert job["extracted"] == {"e": "42"}
    (ev,) = [e for e in _events(api, job["id"]) if e["type"] == "extraction"]
    assert ev["data"]["line"] == "ERROR: code 42" and ev["data"]["line_no"] == 1


def test_extracted_survives_a_restart(server_factory, data_dir):
    server = server_factory(data_dir).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        r = api.post("/jobs", json={"command": "echo version 1.2", "extract": EXTRACTORS})
        job = wait_job(api, r.json()["id"])
        assert job["extracted"] == {"version": "1.2"}
    server.stop()
    server = server_factory(data_dir).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        assert api.get(f"/jobs/{job['id']}").json()["extracted"] == {"version": "1.2"}


def test_bad_pattern_is_refused_at_submit(api):
    r = api.post(
        "/jobs",
        json={
            "command": "true",
            "extract": [{"name": "ok", "pattern": "x"}, {"name": "bad", "pattern": "(unclosed"}],
        },
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert "extract.1.pattern" in error["message"] and "(unclosed" in error["message"]
    assert "missing )" in error["message"]
    r = api.post("/jobs", json={"command": "true", "extract": [{"name": "b", "pattern": r"(a)\1"}]})
    assert r.status_code == 422 and "backreferences" in r.json()["error"]["message"]
    r = api.post(
        "/jobs",
        json={
            "command": "true",
            "extract": [{"name": "d", "pattern": "a"}, {"name": "d", "pattern": "b"}],
        },
    )
    assert r.status_code == 422 and "given twice: d" in r.json()["error"]["message"]
    assert api.get("/jobs").json()["jobs"] == []


async def test_pathological_pattern_does_not_hold_up_another_job(aapi, server):
    # `(a+)+$` against 100 KB of `a` then `b` takes a backtracking engine longer than the universe;
    # many such lines, to keep a slow matcher busy while the other job prints.
    heavy = (
        "import sys\nline = 'a' * 100_000 + 'b\\n'\nfor _ in range(50): sys.stdout.write(line)\n"
    )
    r = await aapi.post(
        "/jobs",
        json={
            "argv": [sys.executable, "-c", heavy],
            "extract": [{"name": "evil", "pattern": "(a+)+$"}],
        },
    )
    assert r.status_code == 201, r.text
    heavy_id = r.json()["id"]
    r = await aapi.post("/jobs", json={"command": "for i in 1 2 3; do echo tick $i; done"})
    light_id = r.json()["id"]
    events = await asyncio.wait_for(collect_sse(aapi, f"/jobs/{light_id}/events"), 30)
    assert output_of(events) == "tick 1\ntick 2\ntick 3\n"
    assert (await aapi.get("/status")).status_code == 200
    heavy_events = await collect_sse(aapi, f"/jobs/{heavy_id}/events")
    assert len(output_of(heavy_events)) == 50 * 100_002
    assert not [e for e in heavy_events if e["type"] == "extraction"]
    assert heavy_events[-1]["data"]["status"] == "succeeded"


# Each form in turn, a pause between them longer than the throttle's interval.
PROGRESS_SCRIPT = r"""
import sys, time
forms = [
    "::progress 10 fetching::\n",
    "\r 20%|██        | 2/10 [00:01<00:04]",
    "\n   ━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━━━━ 3.0/10.0 MB 1.0 MB/s eta 0:00:07\n",
    "[####      ]\n",
    "\x1b]9;4;1;50\x07",
    "step 6/10\n",
    "::progress 70%\n",
    "almost: 80%\n",
]
for f in forms:
    sys.stdout.write(f); sys.stdout.flush(); time.sleep(0.4)
"""


def test_progress_events_from_each_form(api):
    r = api.post("/jobs", json={"argv": [sys.executable, "-c", PROGRESS_SCRIPT]})
    job = wait_job(api, r.json()["id"])
    progress = [e["data"] for e in _events(api, job["id"]) if e["type"] == "progress"]
    assert progress == [
        {"percent": 10.0, "message": "fetching"},
        {"percent": 20.0, "current": 2, "total": 10},
        {"percent": 30.0, "current": 3.0, "total": 10.0, "unit": "MB"},
        {"percent": 40.0},
        {"state": "normal", "percent": 50.0},
        {"current": 6, "total": 10, "percent": 60.0},
        {"percent": 70.0},
        {"percent": 80.0},
    ]
    assert job["progress"] == {"percent": 80.0}


def test_progress_is_throttled_and_the_last_comes_before_complete(api):
    script = "import sys\nfor i in range(1, 2001): sys.stdout.write(f'\\r{i}/2000')\n"
    r = api.post("/jobs", json={"argv": [sys.executable, "-c", script]})
    job = wait_job(api, r.json()["id"])
    events = _events(api, job["id"])
    progress = [i for i, e in enumerate(events) if e["type"] == "progress"]
    # 2,000 updates written at once: a few events, the last one the final state.
    assert 1 <= len(progress) <= 10
    assert events[progress[-1]]["data"] == {"current": 2000, "total": 2000, "percent": 100.0}
    assert progress[-1] < len(events) - 1 and events[-1]["type"] == "complete"
    assert job["progress"] == {"current": 2000, "total": 2000, "percent": 100.0}
    lines = api.get(f"/jobs/{job['id']}/lines").json()["lines"]
    assert lines == [{"line": "2000/2000", "line_no": 1, "stream": "stdout"}]


def test_progress_detection_off_by_config(server_factory, tmp_path, data_dir):
    config = tmp_path / "jobcast.toml"
    config.write_text("detect_progress = false\n")
    server = server_factory(data_dir, extra=["--config", str(config)]).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        r = api.post("/jobs", json={"command": "echo 50%"})
        job = wait_job(api, r.json()["id"])
        assert job["progress"] is None
        assert "progress" not in [e["type"] for e in _events(api, job["id"])]


def test_global_and_template_extractors(server_factory, tmp_path, data_dir):
    config = tmp_path / "jobcast.toml"
    config.write_text(
        """
[[extract]]
name = "error"
pattern = "^ERROR: (.*)"

[[extract]]
name = "version"
pattern = "v(\\\\d+)"

[templates.greet]
command = ["sh", "-c", "echo hello {who}; echo ERROR: boom; echo v1"]
params = { who = { type = "string" } }
extract = [{ name = "who", pattern = "hello (\\\\w+)" }]
"""
    )
    server = server_factory(data_dir, extra=["--config", str(config)]).start()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        r = api.post(
            "/jobs",
            json={
                "template": "greet",
                "args": {"who": "ann"},
                # the job's own `version` replaces the server's
                "extract": [{"name": "version", "pattern": "(v\\d+)"}],
            },
        )
        assert r.status_code == 201, r.text
        job = wait_job(api, r.json()["id"])
        assert job["extracted"] == {"who": "ann", "error": "boom", "version": "v1"}
