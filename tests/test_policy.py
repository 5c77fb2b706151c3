"""The policy's check is a pure function of the request, the caller's scopes and their jobs:
safe mode, scopes, deny and allow patterns, limits; `resolve` expands templates and applies
the default and maximum limits."""

from __future__ import annotations

import pytest

from jobcast.config import ConfigError, load_settings
from jobcast.errors import MissingScope, PolicyDenied, TooManyRequests, ValidationFailed
from jobcast.models import JobSpec
from jobcast.policy import Policy, PolicyConfig
from jobcast.templates import Template

ECHO = Template.model_validate(
    {"command": ["echo", "{msg}"], "params": {"msg": {}}, "timeout": 30, "cwd": "/tmp"}
)


def policy(**config) -> Policy:
    return Policy.build(PolicyConfig.model_validate(config), {"echo": ECHO})


def job(**fields) -> JobSpec:
    return JobSpec.model_validate(fields)


def denied(p: Policy, spec: JobSpec, scopes: frozenset[str] | None = None) -> PolicyDenied:
    with pytest.raises(PolicyDenied) as caught:
        p.check(spec, scopes, 0)
    assert caught.value.status == 403
    return caught.value


def test_safe_mode_refuses_raw_commands_and_runs_templates():
    p = policy(mode="safe")
    for spec in (job(command="make"), job(argv=["make"])):
        e = denied(p, spec)
        assert e.rule == "mode=safe" and "templates: echo" in e.message
    p.check(job(template="echo", args={"msg": "hi"}), None, 0)


def test_expert_mode_is_the_default():
    policy().check(job(argv=["make"]), None, 0)


def test_deny_wins_over_allow_and_names_the_pattern():
    p = policy(allow=["make *", "pytest *"], deny=["* --force*", "rm -rf /*"])
    p.check(job(argv=["make", "test"]), None, 0)
    assert denied(p, job(argv=["make", "--force"])).rule == "deny[0]"
    assert denied(p, job(command="rm -rf /home")).rule == "deny[1]"
    assert denied(p, job(argv=["ls"])).rule == "allow"


def test_patterns_match_the_command_line_as_shlex_writes_it():
    p = policy(deny=["rm * '/my dir'"])
    assert denied(p, job(argv=["rm", "-r", "/my dir"])).rule == "deny[0]"
    p.check(job(argv=["rm", "-r", "/my", "dir"]), None, 0)


def test_scopes_decide_templates_and_raw_commands_when_auth_is_on():
    p = policy()
    raw, tmpl = job(argv=["make"]), job(template="echo", args={"msg": "x"})
    # a scope the token lacks is auth's answer (403 missing_scope), not a policy rule
    with pytest.raises(MissingScope, match="`exec`"):
        p.check(raw, frozenset({"read", "run"}), 0)
    with pytest.raises(MissingScope, match="`run`"):
        p.check(tmpl, frozenset({"read", "exec"}), 0)
    p.check(raw, frozenset({"exec"}), 0)
    p.check(tmpl, frozenset({"run"}), 0)
    p.check(raw, frozenset({"admin"}), 0)


def test_limits_on_timeout_output_and_jobs_per_token():
    p = policy(max_timeout=60, max_output_bytes=1000, max_jobs_per_token=2)
    assert denied(p, job(argv=["x"], timeout=61)).rule == "max_timeout"
    assert denied(p, job(argv=["x"], max_output_bytes=1001)).rule == "max_output_bytes"
    p.check(job(argv=["x"], timeout=60), None, 1)
    with pytest.raises(TooManyRequests) as caught:
        p.check(job(argv=["x"]), None, 2)
    assert caught.value.status == 429 and caught.value.headers["Retry-After"]


def test_the_queue_limit_counts_only_when_no_slot_is_free():
    p = policy(max_queued_jobs=1)
    p.admit(running=1, queued=5, max_running=2)  # a free slot: it runs at once
    p.admit(running=2, queued=0, max_running=2)
    with pytest.raises(TooManyRequests):
        p.admit(running=2, queued=1, max_running=2)


def test_resolve_expands_the_template_and_applies_defaults():
    p = policy(default_timeout=10, max_output_bytes=500)
    spec = p.resolve(job(template="echo", args={"msg": "; rm -rf ~"}, labels={"a": "b"}))
    assert (spec.argv, spec.cwd, spec.template, spec.labels) == (
        ["echo", "; rm -rf ~"],
        "/tmp",
        None,
        {"a": "b"},
    )
    assert spec.timeout == 30  # the template's own
    assert spec.max_output_bytes == 500
    assert p.resolve(job(argv=["x"])).timeout == 10
    assert p.resolve(job(argv=["x"], timeout=3)).timeout == 3
    assert p.resolve(job(template="echo", args={"msg": "m"}, timeout=99)).timeout == 30
    # no default: a job without a timeout gets the maximum
    assert policy(max_timeout=40).resolve(job(argv=["x"])).timeout == 40


def test_an_unknown_template_is_a_422_naming_those_there_are():
    with pytest.raises(ValidationFailed) as caught:
        policy().resolve(job(template="nope"))
    assert "no template 'nope'" in caught.value.message and "echo" in caught.value.message


def test_a_template_request_leaves_what_the_template_sets():
    with pytest.raises(ValueError, match="the template sets `cwd`, `pty`"):
        job(template="echo", cwd="/", pty=True)
    with pytest.raises(ValueError, match="give `template` too"):
        job(argv=["x"], args={"a": 1})


def test_a_template_or_its_request_may_record_the_input():
    shell = Template.model_validate({"command": ["bash"], "pty": True, "record_input": True})
    p = Policy.build(PolicyConfig(), {"echo": ECHO, "shell": shell})
    assert p.resolve(job(template="shell")).record_input
    assert p.resolve(
        job(template="echo", args={"msg": "m"}, stdin=True, record_input=True)
    ).record_input
    assert not p.resolve(job(template="echo", args={"msg": "m"}, stdin=True)).record_input
    # With nothing to type into: the request is refused, saying why.
    with pytest.raises(ValidationFailed, match="give `stdin` or `pty`"):
        p.resolve(job(template="echo", args={"msg": "m"}, record_input=True))


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[policy]\nmode = "paranoid"\n', "policy.mode"),
        ("[policy]\nmax_queued = 3\n", "max_queued"),
        ('[templates.t]\ncommand = ["echo", "{x}"]\n', "templates.t"),
        ('[templates."bad name"]\ncommand = ["echo"]\n', "bad name"),
        (
            '[policy]\nmax_timeout = 10\n[templates.t]\ncommand = ["sleep"]\ntimeout = 20\n',
            "timeout 20 is above policy.max_timeout 10",
        ),
    ],
)
def test_a_bad_policy_or_template_in_the_config_is_a_config_error(tmp_path, text, said):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_the_design_example_loads(tmp_path):
    cfg = tmp_path / "jobcast.toml"
    cfg.write_text(
        '[policy]\nmode = "safe"\ndeny = ["rm -rf /*"]\n\n[templates.test]\n'
        'command = ["pytest", "-q", "{path}"]\n'
        'params = { path = { type = "string", pattern = "^[\\\\w./-]+$" } }\n'
    )
    p = load_settings(cfg).controls()
    assert p.config.mode == "safe" and list(p.templates) == ["test"]
    assert p.resolve(job(template="test", args={"path": "tests/"})).argv == [
        "pytest",
        "-q",
        "tests/",
    ]


@pytest.mark.parametrize(
    ("chat", "said"),
    [
        ({"command": ["agent"]}, "POST /chat passes the message as the string parameter `message`"),
        (
            {"command": ["agent", "{message}"], "params": {"message": {"type": "integer"}}},
            "the string parameter `message`",
        ),
        (
            {
                "command": ["agent", "{model}", "{message}"],
                "params": {"message": {}, "model": {}},
            },
            "parameter(s) model need a default",
        ),
    ],
)
def test_a_chat_template_must_take_the_message_and_nothing_else_without_a_default(chat, said):
    with pytest.raises(ValueError, match="templates.chat: ") as caught:
        Policy.build(PolicyConfig(), {"chat": Template.model_validate(chat)})
    assert said in str(caught.value)
    fine = {
        "command": ["agent", "--model={model}", "{message}"],
        "params": {"message": {}, "model": {"default": "big"}},
    }
    Policy.build(PolicyConfig(), {"chat": Template.model_validate(fine)})
