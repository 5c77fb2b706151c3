"""The /jobs JSON endpoints against a real server: create, list, get, cancel, input, signal, delete."""

from __future__ import annotations

import time

import httpx

from tests.conftest import wait_job
from tests.helpers import wait_for


def test_create_and_finish_with_exit_code(api):
    r = api.post(
        "/jobs", json={"command": "echo hello; exit 3", "name": "hello", "labels": {"k": "v"}}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["name"] == "hello"
    done = wait_job(api, job["id"])
    assert (done["status"], done["exit_code"], done["signal"]) == ("failed", 3, None)
    assert done["stdout_bytes"] == 6 and done["started_at"] <= done["finished_at"]
    assert api.get("/jobs/hello").json()["id"] == job["id"]


def test_argv_runs_without_a_shell(api):
    job = api.post("/jobs", json={"argv": ["printf", "%s", "$HOME;x"]}).json()
    wait_job(api, job["id"])
    assert api.get(f"/jobs/{job['id']}/log").content == b"$HOME;x"


def test_cwd_and_env(api, tmp_path):
    job = api.post(
        "/jobs",
        json={"command": "pwd; echo $GREETING", "cwd": str(tmp_path), "env": {"GREETING": "hi"}},
    ).json()
    assert wait_job(api, job["id"])["status"] == "succeeded"
    assert api.get(f"/jobs/{job['id']}/log").text == f"{tmp_path}\nhi\n"


def test_a_job_that_cannot_start_says_why(api, tmp_path):
    job = api.post("/jobs", json={"argv": ["/no/such/program"]}).json()
    done = wait_job(api, job["id"])
    assert done["status"] == "failed"
    events = api.get(f"/jobs/{job['id']}/events").text
    assert "event: error" in events and "/no/such/program" in events


def test_bad_input_gets_clear_errors(api):
    cases = [
        (
            api.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "invalid_json",
        ),
        (api.post("/jobs", json=["echo"]), 400, "invalid_json"),
        (api.post("/jobs", json={}), 422, "validation_failed"),
        (api.post("/jobs", json={"command": "a", "argv": ["b"]}), 422, "validation_failed"),
        (api.post("/jobs", json={"command": 5}), 422, "validation_failed"),
        (api.post("/jobs", json={"command": "x", "bogus": 1}), 422, "validation_failed"),
        (api.post("/jobs", json={"command": "x", "timeout": -1}), 422, "validation_failed"),
        (api.get("/jobs/nope"), 404, "job_not_found"),
        (api.get("/jobs?status=bogus"), 400, "bad_request"),
        (api.get("/jobs?limit=x"), 400, "bad_request"),
        (api.get("/nowhere"), 404, "not_found"),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, (resp.request.url, resp.text)
        assert resp.json()["error"]["code"] == code, resp.text
        assert resp.json()["error"]["message"]


def test_list_filters_and_pagination(api):
    ids = [
        api.post("/jobs", json={"argv": ["true"], "labels": {"batch": "b1", "i": str(i)}}).json()[
            "id"
        ]
        for i in range(4)
    ]
    page = api.get("/jobs", params={"label": "batch=b1", "limit": 3}).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:3]
    rest = api.get(
        "/jobs", params={"label": "batch=b1", "limit": 3, "cursor": page["next_cursor"]}
    ).json()
    assert [j["id"] for j in rest["jobs"]] == ids[:1] and rest["next_cursor"] is None
    for i in ids:
        wait_job(api, i)
    assert all(
        j["status"] == "succeeded"
        for j in api.get("/jobs", params={"status": "succeeded"}).json()["jobs"]
    )


def test_cancel_is_idempotent_even_once_finished(api):
    job = api.post("/jobs", json={"command": "sleep 30"}).json()
    wait_for(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "running")
    r = api.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 200
    api.post(f"/jobs/{job['id']}/cancel")
    done = wait_job(api, job["id"])
    assert done["status"] == "cancelled" and done["signal"] == "SIGTERM"
    r = api.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 200 and r.json() == done


def test_jobs_do_not_see_the_servers_settings(server_factory, data_dir):
    srv = server_factory(data_dir, env={"JOBCAST_SECRET_THING": "s3cret"}).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        job = api.post("/jobs", json={"command": "env"}).json()
        wait_job(api, job["id"])
        out = api.get(f"/jobs/{job['id']}/log").text
    assert "JOBCAST_JOB_ID=" + job["id"] in out
    assert "JOBCAST_SECRET_THING" not in out


def test_input_needs_stdin_and_reaches_the_process(api):
    plain = api.post("/jobs", json={"command": "sleep 30"}).json()
    r = api.post(f"/jobs/{plain['id']}/input", json={"data": "x"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_stdin"
    api.post(f"/jobs/{plain['id']}/cancel")
    job = api.post("/jobs", json={"argv": ["cat"], "stdin": True}).json()
    assert api.post(f"/jobs/{job['id']}/input", json={"data": "one\n"}).json() == {"written": 4}
    assert api.post(f"/jobs/{job['id']}/input", json={"b64": "dHdvCg==", "eof": True}).json() == {
        "written": 4
    }
    assert wait_job(api, job["id"])["status"] == "succeeded"
    assert api.get(f"/jobs/{job['id']}/log").content == b"one\ntwo\n"


def test_signal_reaches_the_group(api):
    job = api.post(
        "/jobs", json={"command": "trap 'echo got INT; exit 7' INT; while :; do sleep 0.05; done"}
    ).json()
    wait_for(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "running")
    time.sleep(0.2)  # let the shell install its trap; nothing observable to wait on
    assert api.post(f"/jobs/{job['id']}/signal", json={"signal": "INT"}).json() == {
        "signal": "SIGINT"
    }
    done = wait_job(api, job["id"])
    assert done["exit_code"] == 7
    bad = api.post(f"/jobs/{job['id']}/signal", json={"signal": "NOPE"})
    assert bad.status_code in (400, 409)


def test_delete_only_finished(api):
    job = api.post("/jobs", json={"command": "sleep 30"}).json()
    r = api.delete(f"/jobs/{job['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_not_finished"
    api.post(f"/jobs/{job['id']}/cancel")
    wait_job(api, job["id"])
    assert api.delete(f"/jobs/{job['id']}").status_code == 204
    assert api.get(f"/jobs/{job['id']}").status_code == 404


def test_status_openapi_and_docs(api):
    status = api.get("/status").json()
    assert status["version"] and status["uptime"] >= 0 and "running" in status["jobs"]
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/jobs/{ref}/events" in spec["paths"]
    assert "command" in spec["components"]["schemas"]["JobSpec"]["properties"]
    assert "openapi.json" in api.get("/docs").text


def test_max_running_jobs_queues_fifo(server_factory, data_dir):
    import httpx

    srv = server_factory(data_dir, extra=["--max-running-jobs", "1"]).start()
    with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=30) as api:
        first = api.post("/jobs", json={"command": "sleep 0.5"}).json()
        second = api.post("/jobs", json={"command": "true"}).json()
        assert api.get(f"/jobs/{second['id']}").json()["status"] == "queued"
        a, b = wait_job(api, first["id"]), wait_job(api, second["id"])
        assert b["started_at"] >= a["finished_at"]


def test_deleting_a_followed_job_ends_its_streams(api, server):
    import httpx

    job = api.post("/jobs", json={"command": "echo x"}).json()
    wait_job(api, job["id"])
    with httpx.stream(
        "GET", f"{server.url}/jobs/{job['id']}/log", params={"follow": 1}, headers=server.headers
    ) as r:
        assert api.delete(f"/jobs/{job['id']}").status_code == 204
        assert b"".join(r.iter_raw()) in (b"", b"x\n")
    assert api.get("/status").status_code == 200
    assert "Traceback" not in server.output()
