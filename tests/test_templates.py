"""Templates: placeholders are filled into argv elements, typed parameters refuse what breaks
their rule (naming the parameter and the rule), and a bad template is refused when it is read."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from jobcast.errors import ValidationFailed
from jobcast.templates import Template, expand, words_to_args


def template(**fields) -> Template:
    return Template.model_validate(fields)


TEST = template(
    command=["pytest", "-q", "{fast}", "--maxfail={n}", "{path}", "--mode={mode}", "{{lit}}"],
    params={
        "path": {"type": "string", "pattern": r"^[\w./-]+$"},
        "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "fast": {"type": "boolean", "default": False},
        "mode": {"type": "enum", "values": ["unit", "all"], "default": "unit"},
    },
)


def test_arguments_fill_their_elements_and_defaults_the_rest():
    argv = expand("test", TEST, {"path": "tests/", "fast": True})
    assert argv == ["pytest", "-q", "--fast", "--maxfail=3", "tests/", "--mode=unit", "{lit}"]


def test_a_false_flag_disappears_and_text_values_are_read_by_type():
    argv = expand("test", TEST, {"path": "t", "fast": "false", "n": "7"})
    assert argv == ["pytest", "-q", "--maxfail=7", "t", "--mode=unit", "{lit}"]


def test_shell_syntax_stays_one_literal_argument():
    free = template(command=["echo", "{msg}"], params={"msg": {}})
    assert expand("echo", free, {"msg": "; rm -rf ~"}) == ["echo", "; rm -rf ~"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ({}, "args.path: required by template 'test'"),
        ({"path": "; rm -rf ~"}, "args.path: must match the pattern"),
        ({"path": "t", "n": 11}, "args.n: must be at most 10"),
        ({"path": "t", "n": 0}, "args.n: must be at least 1"),
        ({"path": "t", "n": "x"}, "args.n: must be an integer"),
        ({"path": "t", "mode": "some"}, "args.mode: must be one of unit, all"),
        ({"path": "t", "fast": "maybe"}, "args.fast: must be a boolean"),
        ({"path": 3}, "args.path: must be a string"),
        ({"path": "t", "bogus": 1}, "has no parameter 'bogus'"),
    ],
)
def test_a_bad_argument_is_named_with_its_rule(args, said):
    with pytest.raises(ValidationFailed) as caught:
        expand("test", TEST, args)
    assert said in caught.value.message
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"command": ["echo", "{x}"]}, "uses {x}, which is no parameter"),
        ({"command": ["echo"], "params": {"x": {}}}, "x appear nowhere"),
        ({"command": ["echo", "-{b}"], "params": {"b": {"type": "boolean"}}}, "whole element"),
        ({"command": ["echo", "{x"], "params": {}}, "lone brace"),
        ({"command": ["e", "{x}"], "params": {"x": {"pattern": "("}}}, "not a regular expression"),
        ({"command": ["e", "{x}"], "params": {"x": {"type": "enum"}}}, "needs `values`"),
        ({"command": ["e", "{x}"], "params": {"x": {"pattern": "^a$", "default": "b"}}}, "default"),
        ({"command": ["e", "{x}"], "params": {"x": {"type": "float"}}}, "type"),
        ({"command": []}, "command"),
        ({"command": ["e"], "shell": True}, "shell"),
        ({"command": ["e"], "env": {"A=B": "c"}}, "a name without `=`"),
    ],
)
def test_a_bad_template_is_refused_when_read(fields, said):
    with pytest.raises(ValidationError) as caught:
        Template.model_validate(fields)
    assert said in str(caught.value)


def test_the_schema_is_json_schema_for_a_form():
    schema = TEST.json_schema()
    assert schema["required"] == ["path"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["path"]["pattern"] == r"^[\w./-]+$"
    assert schema["properties"]["n"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 10,
        "default": 3,
    }
    assert schema["properties"]["fast"] == {"type": "boolean", "default": False}
    assert schema["properties"]["mode"]["enum"] == ["unit", "all"]


def test_command_line_words_become_arguments_by_the_parameters_types():
    t = Template.model_validate(
        {
            "command": ["x", "{fast}", "{path}", "{n}"],
            "params": {
                "path": {},
                "fast": {"type": "boolean", "default": False},
                "n": {"type": "integer", "default": 1},
            },
        }
    )
    assert words_to_args("x", t, ["--fast", "src", "3"]) == {"fast": True, "path": "src", "n": "3"}
    assert words_to_args("x", t, ["--no-fast", "--n=2", "p"]) == {
        "fast": False,
        "n": "2",
        "path": "p",
    }
    assert words_to_args("x", t, ["--", "--fast"]) == {"path": "--fast"}
    assert expand("x", t, words_to_args("x", t, ["--fast", "a", "7"])) == ["x", "--fast", "a", "7"]
    for words, said in (
        (["--slow"], "no option --slow (its parameters: --path, --fast, --n)"),
        (["--path"], "--path takes a value (string)"),
        (["a", "1", "b"], "too many arguments for template 'x': 'b'"),
        (["--fast", "--fast"], "fast is given twice"),
    ):
        with pytest.raises(ValidationFailed, match=re.escape(said)):
            words_to_args("x", t, words)
