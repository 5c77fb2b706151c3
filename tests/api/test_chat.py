"""POST /chat and POST /direct against a real server with a config file: the message reaches the
`chat` template as one literal argument, context refs reach the job, `stream` answers with the
job's SSE stream, a command line is parsed into a template's arguments, and a server without the
template says how to define one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from jobcast.protocol import SSEParser
from tests.conftest import ServerProcess, wait_job

#: the chat template's program: its argv and its context files' contents as JSON; a message
#: `exit N` exits with N
CHAT_CODE = (
    "import json, os, sys\n"
    "ctx = [open(p).read() for p in os.environ.get('JOBCAST_CONTEXT', '').split(':') if p]\n"
    "print(json.dumps(dict(argv=sys.argv[1:], context=ctx)))\n"
    "m = sys.argv[1]\n"
    "sys.exit(int(m[5:]) if m.startswith('exit ') else 0)\n"
)
ARGV_PRINTER = "import json, sys; print(json.dumps(sys.argv[1:]))"


def config_text(chat: bool = True) -> str:
    py = json.dumps(sys.executable)
    text = (
        "[templates.test]\n"
        f'command = [{py}, "-c", {json.dumps(ARGV_PRINTER)}, "{{fast}}", "--n={{n}}", '
        '"{path}", "{extra}"]\n'
        'params.path = { type = "string", default = "tests/" }\n'
        'params.n = { type = "integer", minimum = 1, maximum = 5, default = 1 }\n'
        'params.fast = { type = "boolean", default = false }\n'
        'params.extra = { type = "string", default = "-" }\n'
    )
    if chat:
        text += (
            "[templates.chat]\n"
            f'command = [{py}, "-c", {json.dumps(CHAT_CODE)}, "{{message}}"]\n'
            'params.message = { type = "string" }\n'
        )
    return text


def start_server(factory: type[ServerProcess], data_dir: Path, chat: bool = True) -> ServerProcess:
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(config_text(chat))
    return factory(data_dir, extra=["--config", str(cfg)]).start()


@pytest.fixture
def cserver(server_factory: type[ServerProcess], data_dir: Path) -> ServerProcess:
    return start_server(server_factory, data_dir)


@pytest.fixture
def capi(cserver: ServerProcess):
    with httpx.Client(base_url=cserver.url, headers=cserver.headers, timeout=30) as c:
        yield c


def finished(api: httpx.Client, r: httpx.Response) -> tuple[dict, bytes]:
    assert r.status_code == 201, r.text
    job = wait_job(api, r.json()["id"])
    return job, api.get(f"/jobs/{job['id']}/log").content


def test_chat_gives_the_message_to_the_template_as_one_literal_argument(capi, tmp_path):
    pwned = tmp_path / "pwned"
    message = f"add tests; rm -rf ~; touch {pwned} $(id) `id` 'x"
    job, out = finished(capi, capi.post("/chat", json={"message": message}))
    assert job["status"] == "succeeded"
    assert json.loads(out) == {"argv": [message], "context": []}
    assert not pwned.exists()
    # traced as POST /jobs with a template is
    (entry,) = capi.get("/trace", params={"op": "job.create"}).json()["entries"]
    assert entry["job"] == job["id"] and entry["outcome"] == "ok"
    assert entry["detail"]["template"] == "chat"


def test_chat_context_refs_reach_the_job(capi):
    refs = [capi.post("/pastes", json={"text": t}).json()["ref"] for t in ("first", "second")]
    job, out = finished(capi, capi.post("/chat", json={"message": "m", "context": refs}))
    assert json.loads(out)["context"] == ["first", "second"]
    unknown = "ctx://paste/" + "0" * 64
    bad = capi.post("/chat", json={"message": "m", "context": [unknown]})
    assert bad.status_code == 422 and unknown in bad.json()["error"]["message"]


def read_sse(resp: httpx.Response) -> list[dict]:
    parser = SSEParser()
    return [orjson.loads(m.data) for chunk in resp.iter_raw() for m in parser.feed(chunk)]


def test_chat_with_stream_answers_with_the_jobs_event_stream(capi):
    with capi.stream("POST", "/chat", json={"message": "exit 3", "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        events = read_sse(resp)  # ends by itself: the stream ends after `complete`
    job_id = events[0]["job"]
    assert resp.headers["location"] == f"/jobs/{job_id}"
    assert events[-1]["type"] == "complete"
    assert events[-1]["data"]["status"] == "failed" and events[-1]["data"]["exit_code"] == 3
    stdout = "".join(e["data"]["text"] for e in events if e["type"] == "stdout")
    assert json.loads(stdout)["argv"] == ["exit 3"]
    # the same events GET /jobs/{id}/events gives
    with capi.stream("GET", f"/jobs/{job_id}/events") as again:
        assert read_sse(again) == events


def test_without_a_chat_template_chat_is_a_404_saying_how_to_define_one(
    server_factory, tmp_path, api
):
    (tmp_path / "other" / "data").mkdir(parents=True)
    other = start_server(server_factory, tmp_path / "other" / "data", chat=False)
    for url, headers in ((other.url, other.headers), (str(api.base_url), api.headers)):
        r = httpx.post(f"{url}/chat", json={"message": "hi"}, headers=headers)
        assert r.status_code == 404
        message = r.json()["error"]["message"]
        assert "[templates.chat]" in message and "{message}" in message
    # and /direct on a server with no templates at all
    r = api.post("/direct", json={"command": "test --fast"})
    assert r.status_code == 404 and "[templates.NAME]" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("test", ["--n=1", "tests/", "-"]),
        ("test --fast", ["--fast", "--n=1", "tests/", "-"]),
        ("test --fast --no-fast", None),  # given twice: refused below
        ("test --n=3 src", ["--n=3", "src", "-"]),
        # positionals fill path, n, extra: the non-boolean parameters in their declared order
        ("test src 3 more", ["--n=3", "src", "more"]),
        ("test --path=p 2", ["--n=2", "p", "-"]),
        ("test --n=2 p q", ["--n=2", "p", "q"]),
        ("test --no-fast 'a b; rm -rf ~'", ["--n=1", "a b; rm -rf ~", "-"]),
        ("test -- --fast", ["--n=1", "--fast", "-"]),
        ("test -5", ["--n=1", "-5", "-"]),
    ],
)
def test_direct_parses_flags_key_values_and_positionals(capi, command, argv):
    r = capi.post("/direct", json={"command": command})
    if argv is None:
        assert r.status_code == 422 and "fast is given twice" in r.text
        return
    job, out = finished(capi, r)
    assert json.loads(out) == argv
    assert job["status"] == "succeeded"


def test_direct_is_traced_with_its_template(capi):
    job, _ = finished(capi, capi.post("/direct", json={"command": "test --fast"}))
    (entry,) = capi.get("/trace", params={"op": "job.create"}).json()["entries"]
    assert (entry["job"], entry["detail"]["template"]) == (job["id"], "test")


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        (
            "/direct",
            {"command": "nope --fast"},
            "no template 'nope' on this server (templates: chat, test",
        ),
        ("/direct", {"command": "test --n=9"}, "args.n: must be at most 5"),
        ("/direct", {"command": "test --n=two"}, "args.n: must be an integer"),
        ("/direct", {"command": "test --bogus"}, "template 'test' has no option --bogus"),
        ("/direct", {"command": "test --n"}, "--n takes a value (integer): write --n=VALUE"),
        ("/direct", {"command": "test --no-path"}, "--no-path is no flag"),
        ("/direct", {"command": "test a 2 c d"}, "too many arguments for template 'test': 'd'"),
        ("/direct", {"command": "test 'open"}, "command: cannot split"),
        ("/direct", {"command": "   "}, "command: give a template's name"),
        ("/direct", {"command": ""}, "command: String should have at least 1 character"),
        ("/direct", {}, "command: Field required"),
        ("/chat", {"message": 3}, "message: Input should be a valid string"),
        ("/chat", {"message": "x", "context": ["nope"]}, "context.0"),
        ("/chat", {"message": "x", "stream": "yes"}, "stream: Input should be a valid boolean"),
        ("/chat", {"message": "x", "argv": ["sh"]}, "argv: Extra inputs are not permitted"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_or_parameter(capi, path, body, said):
    r = capi.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_failed"
    assert said in r.json()["error"]["message"]


def test_chat_and_direct_obey_the_policy_as_post_jobs_does(server_factory, data_dir):
    cfg = data_dir.parent / "jobcast.toml"
    cfg.write_text(
        '[policy]\nmode = "safe"\nmax_running_jobs = 1\nmax_queued_jobs = 0\n'
        + config_text()
        + '[templates.sleep]\ncommand = ["sleep", "{secs}"]\n'
        + 'params.secs = { type = "integer", default = 30 }\n'
    )
    s = server_factory(data_dir, extra=["--config", str(cfg)]).start()
    with httpx.Client(base_url=s.url, headers=s.headers, timeout=30) as api:
        # templates are what safe mode runs: both endpoints may
        job, out = finished(api, api.post("/chat", json={"message": "hello"}))
        assert json.loads(out)["argv"] == ["hello"]
        sleeper = api.post("/direct", json={"command": "sleep"})
        assert sleeper.status_code == 201, sleeper.text
        # the one slot is taken and the queue holds none: the limit answers, for both
        for path, body in (("/chat", {"message": "m"}), ("/direct", {"command": "test"})):
            r = api.post(path, json=body)
            assert r.status_code == 429 and r.headers["Retry-After"], r.text
        api.post(f"/jobs/{sleeper.json()['id']}/cancel")
