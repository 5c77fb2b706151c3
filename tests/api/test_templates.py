"""Templates over HTTP and the CLI: arguments reach the program as the literal argv elements the
template puts them in (no shell), a bad argument is a 422 naming it, GET /templates gives each
template's JSON Schema, and a bad template stops the server at start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli_jobs import jobcast
from tests.conftest import ServerProcess, wait_job

#: prints its arguments as JSON: the argv as the process got it
ARGV_PRINTER = "import json, sys; print(json.dumps(sys.argv[1:]))"


def config_text(extra: str = "") -> str:
    py, code = json.dumps(sys.executable), json.dumps(ARGV_PRINTER)
    return (
        "[templates.argv]\n"
        'description = "Print its arguments"\n'
        f'command = [{py}, "-c", {code}, "{{fast}}", "--count={{n}}", "{{msg}}"]\n'
        'params.msg = { type = "string", description = "Anything at all" }\n'
        'params.n = { type = "integer", minimum = 1, maximum = 5, default = 1 }\n'
        'params.fast = { type = "boolean", default = false }\n'
        "[templates.where]\n"
        f'command = [{py}, "-c", "import os; print(os.getcwd(), os.environ[\'WHO\'])"]\n'
        'cwd = "/"\nenv = { WHO = "template" }\ntimeout = 30\n' + extra
    )


@pytest.fixture
def tserver(server_factory: type[ServerProcess], data_dir: Path) -> ServerProcess:
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(config_text())
    return server_factory(data_dir, extra=["--config", str(cfg)]).start()


@pytest.fixture
def tapi(tserver: ServerProcess):
    with httpx.Client(base_url=tserver.url, headers=tserver.headers, timeout=30) as c:
        yield c


def run_template(api: httpx.Client, name: str, **args) -> tuple[dict, bytes]:
    r = api.post("/jobs", json={"template": name, "args": args})
    assert r.status_code == 201, r.text
    job = wait_job(api, r.json()["id"])
    return job, api.get(f"/jobs/{job['id']}/log").content


def test_shell_syntax_in_an_argument_reaches_the_program_as_one_literal_argument(tapi, tmp_path):
    pwned = tmp_path / "pwned"
    evil = f'\'; touch {pwned}; echo $HOME `id` "x"'
    job, out = run_template(tapi, "argv", msg=evil, fast=True, n=3)
    assert job["status"] == "succeeded"
    assert json.loads(out) == ["--fast", "--count=3", evil]
    assert job["argv"][-3:] == ["--fast", "--count=3", evil]
    assert not pwned.exists()


def test_defaults_and_the_template_own_cwd_env_and_timeout(tapi):
    job, out = run_template(tapi, "argv", msg="m")
    assert json.loads(out) == ["--count=1", "m"]
    job, out = run_template(tapi, "where")
    assert out.split() == [b"/", b"template"]
    assert job["cwd"] == "/" and job["timeout"] == 30


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"template": "argv", "args": {}}, "args.msg: required by template 'argv'"),
        ({"template": "argv", "args": {"msg": "x", "n": 9}}, "args.n: must be at most 5"),
        ({"template": "argv", "args": {"msg": "x", "n": "two"}}, "args.n: must be an integer"),
        (
            {"template": "argv", "args": {"msg": "x", "fast": "maybe"}},
            "args.fast: must be a boolean",
        ),
        ({"template": "argv", "args": {"msg": "x", "rm": "1"}}, "has no parameter 'rm'"),
        ({"template": "nope"}, "no template 'nope' on this server (templates: argv, where"),
        ({"template": "argv", "cwd": "/etc"}, "the template sets `cwd`"),
        ({"template": "argv", "argv": ["ls"]}, "give exactly one of"),
    ],
)
def test_a_bad_template_request_is_a_422_naming_it(tapi, body, said):
    r = tapi.post("/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_failed"
    assert said in r.json()["error"]["message"]


def test_get_templates_gives_each_its_arguments_json_schema(tapi):
    body = tapi.get("/templates").json()
    assert body["mode"] == "expert"
    argv, where = body["templates"]
    assert (argv["name"], argv["description"], where["name"]) == (
        "argv",
        "Print its arguments",
        "where",
    )
    assert argv["schema"] == {
        "type": "object",
        "properties": {
            "msg": {"type": "string", "maxLength": 4096, "description": "Anything at all"},
            "n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
            "fast": {"type": "boolean", "default": False},
        },
        "required": ["msg"],
        "additionalProperties": False,
    }
    assert where["schema"]["properties"] == {} and where["timeout"] == 30


def test_a_server_without_templates_lists_none(api):
    assert api.get("/templates").json() == {"mode": "expert", "templates": []}


def test_jobcast_run_t_runs_a_template_with_typed_arguments(tserver, tmp_path):
    done = jobcast(tserver.url, "run", "-t", "argv", "msg=; rm -rf ~", "n=2", "fast=true")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["--fast", "--count=2", "; rm -rf ~"]
    bad = jobcast(tserver.url, "run", "-t", "argv", "msg=x", "n=7")
    assert bad.returncode != 0 and b"args.n: must be at most 5" in bad.stderr
    usage = jobcast(tserver.url, "run", "-t", "argv", "--pty", "msg=x")
    assert usage.returncode == 2 and b"the template sets it" in usage.stderr


def test_a_bad_template_in_the_config_stops_the_server_at_start(tmp_path):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text('[templates.broken]\ncommand = ["echo", "{nothing}"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "jobcast", "serve", "--port", "0", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "templates.broken" in lines[0] and "{nothing}" in lines[0]


async def test_both_clients_run_templates_and_list_them(tserver):
    from jobcast.client import AsyncClient, Client
    from jobcast.errors import ValidationFailed

    with Client(tserver.url) as client:
        assert [t["name"] for t in client.templates()["templates"]] == ["argv", "where"]
        job = client.wait(client.run_template("argv", {"msg": "a b", "n": 2}).id)
        assert job.argv[-2:] == ["--count=2", "a b"]
        with pytest.raises(ValidationFailed, match="args.msg: required"):
            client.run_template("argv")
    async with AsyncClient(tserver.url) as aclient:
        assert (await aclient.templates())["mode"] == "expert"
        job = await aclient.run_template("argv", {"msg": "x"}, labels={"k": "v"})
        assert job.labels == {"k": "v"}
