"""Templates: operator-defined commands with typed parameters (`[templates.NAME]` in the config).

A template's `command` is an argv whose elements may hold `{param}` placeholders. Arguments are
substituted into those elements, each value into the element it is written in, and the argv is
run without a shell: `; rm -rf ~` given as an argument reaches the program as one literal
argument. A `boolean` parameter is a flag: an element that is exactly `{name}` becomes the flag
(`--name` unless `flag` says otherwise) when it is true, and disappears when it is false.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .errors import ValidationFailed
from .extract import Extractor, unique_names

__all__ = ["CHAT", "CHAT_PARAM", "Param", "Template", "expand", "words_to_args"]

#: `{name}` a placeholder; `{{` and `}}` literal braces
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")
_PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_INTEGER = re.compile(r"-?[0-9]{1,18}")

#: the template `POST /chat` runs, and the parameter the message goes into
CHAT, CHAT_PARAM = "chat", "message"


class Param(BaseModel):
    """One parameter of a template, as written in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["string", "integer", "enum", "boolean"] = "string"
    description: str | None = None
    #: string: the whole value must match (re.fullmatch)
    pattern: str | None = None
    #: string: the longest value taken
    max_length: int = Field(4096, ge=1, le=128 * 1024)
    #: integer: inclusive bounds
    minimum: int | None = None
    maximum: int | None = None
    #: enum: the values taken
    values: list[str] | None = None
    #: boolean: the argv element it becomes when true (default `--name`, `_` as `-`)
    flag: str | None = None
    default: str | int | bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.type == "string" and self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a regular expression: {e}"
                ) from None
        if self.type == "enum" and not self.values:
            raise ValueError("an enum parameter needs `values`, a non-empty list of strings")
        if self.type != "enum" and self.values is not None:
            raise ValueError("`values` is for enum parameters only")
        if self.type != "boolean" and self.flag is not None:
            raise ValueError("`flag` is for boolean parameters only")
        if self.type != "string" and self.pattern is not None:
            raise ValueError("`pattern` is for string parameters only")
        if self.type != "integer" and (self.minimum is not None or self.maximum is not None):
            raise ValueError("`minimum`/`maximum` are for integer parameters only")
        if self.default is not None:
            # The operator's own default obeys the rules the clients' values obey.
            error = self.problem(self.default)
            if error is not None:
                raise ValueError(f"default {self.default!r}: {error}")
        return self

    def problem(self, value: object) -> str | None:
        """Why `value` is not valid for this parameter, or None."""
        if self.type == "boolean":
            return None if isinstance(value, bool) else "must be a boolean (true or false)"
        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                return "must be an integer"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum}"
            return None
        if not isinstance(value, str):
            return "must be a string"
        if "\0" in value:
            return "must not contain a NUL byte"
        if self.type == "enum":
            assert self.values is not None
            return None if value in self.values else f"must be one of {', '.join(self.values)}"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"must match the pattern {self.pattern!r}"
        return None

    def coerce(self, value: object) -> object:
        """Take the text a command line gives (`n=3`, `fast=true`) for an integer or a boolean."""
        if isinstance(value, str):
            if self.type == "integer" and _INTEGER.fullmatch(value):
                return int(value)
            if self.type == "boolean" and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.type == "integer":
            schema = {"type": "integer"}
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        elif self.type == "boolean":
            schema = {"type": "boolean"}
        elif self.type == "enum":
            schema = {"type": "string", "enum": list(self.values or [])}
        else:
            schema = {"type": "string", "maxLength": self.max_length}
            if self.pattern is not None:
                schema["pattern"] = self.pattern
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        return schema


ParamName = Annotated[str, Field(pattern=_PARAM_NAME)]


class Template(BaseModel):
    """`[templates.NAME]`: a command with parameters, and how it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] = Field(..., min_length=1)
    description: str | None = None
    params: dict[ParamName, Param] = Field(default_factory=dict)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0)
    pty: bool = False
    #: keep what is typed into its jobs for their recordings, whatever the request says
    record_input: bool = False
    #: run over the job's lines before the request's own `extract`
    extract: Annotated[list[Extractor], AfterValidator(unique_names)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _placeholders(self) -> Template:
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key + value:
                raise ValueError(f"env {key!r}: a name without `=`, and no NUL byte in either")
        used: set[str] = set()
        for i, element in enumerate(self.command):
            for m in _PLACEHOLDER.finditer(element):
                name = m.group(1)
                if m.group(0) in ("{", "}"):
                    raise ValueError(
                        f"command[{i}] {element!r}: a lone brace; write {{{{ or }}}} for a brace"
                    )
                if name is None:
                    continue
                param = self.params.get(name)
                if param is None:
                    raise ValueError(f"command[{i}] uses {{{name}}}, which is no parameter")
                if param.type == "boolean" and element != f"{{{name}}}":
                    raise ValueError(
                        f"command[{i}] {element!r}: the boolean {{{name}}} must be a whole "
                        "element (it becomes its flag, or nothing)"
                    )
                used.add(name)
        if unused := sorted(set(self.params) - used):
            raise ValueError(f"parameter(s) {', '.join(unused)} appear nowhere in `command`")
        return self

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema: what a form (the web UI's) is built from."""
        required = [name for name, p in self.params.items() if p.default is None]
        return {
            "type": "object",
            "properties": {name: p.json_schema() for name, p in self.params.items()},
            "required": required,
            "additionalProperties": False,
        }


def expand(name: str, template: Template, args: dict[str, Any]) -> list[str]:
    """The argv of `template` with `args` substituted; never through a shell.

    Raises:
        ValidationFailed: an argument is unknown, missing or breaks its parameter's rule; the
            message names the parameter and the rule.
    """
    unknown = sorted(set(args) - set(template.params))
    if unknown:
        known = ", ".join(template.params) or "none"
        raise ValidationFailed(
            f"args: template {name!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {known})"
        )
    values: dict[str, object] = {}
    for pname, param in template.params.items():
        if pname in args:
            value = param.coerce(args[pname])
        elif param.default is not None:
            value = param.default
        else:
            raise ValidationFailed(f"args.{pname}: required by template {name!r}, and not given")
        error = param.problem(value)
        if error is not None:
            raise ValidationFailed(f"args.{pname}: {error} (got {_short(value)})")
        values[pname] = value
    argv: list[str] = []
    for element in template.command:
        whole = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", element)
        if whole and template.params[whole.group(1)].type == "boolean":
            pname = whole.group(1)
            if values[pname]:
                argv.append(template.params[pname].flag or "--" + pname.replace("_", "-"))
            continue
        argv.append(_PLACEHOLDER.sub(lambda m: _fill(m, values), element))
    return argv


def _fill(m: re.Match[str], values: dict[str, object]) -> str:
    token = m.group(0)
    if token in ("{{", "}}"):
        return token[0]
    return str(values[m.group(1)])


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def words_to_args(name: str, template: Template, words: list[str]) -> dict[str, str | bool]:
    """The arguments a command line's words give (`POST /direct`, after the template's name):
    `--flag` (`--no-flag`) sets a boolean, `--key=value` any parameter, and the other words fill
    the non-boolean parameters not named so, in their declared order; after `--` every word is
    positional. Values stay text: `expand` reads integers and booleans from it.

    Raises:
        ValidationFailed: an unknown option, a value missing or given twice, too many words.
    """
    params = template.params
    listed = ", ".join(f"--{p.replace('_', '-')}" for p in params) or "none"
    args: dict[str, str | bool] = {}
    positional: list[str] = []
    options = True
    for word in words:
        if options and word == "--":
            options = False
            continue
        if not (options and word.startswith("--")):
            positional.append(word)
            continue
        key, sep, value = word[2:].partition("=")
        pname = key.replace("-", "_")
        given: str | bool = value
        if pname not in params and not sep and pname.startswith("no_"):
            pname, given = pname[3:], False
        param = params.get(pname)
        if param is None:
            raise ValidationFailed(
                f"command: template {name!r} has no option --{key} (its parameters: {listed})"
            )
        if not sep and given is not False:
            if param.type != "boolean":
                raise ValidationFailed(
                    f"command: --{key} takes a value ({param.type}): write --{key}=VALUE"
                )
            given = True
        elif given is False and param.type != "boolean":
            raise ValidationFailed(f"command: --{key} is no flag: {pname} is a {param.type}")
        if pname in args:
            raise ValidationFailed(f"command: {pname} is given twice")
        args[pname] = given
    free = [p for p, param in params.items() if param.type != "boolean" and p not in args]
    if len(positional) > len(free):
        extra = " ".join(positional[len(free) :])
        takes = ", ".join(free) or "no more positional arguments"
        raise ValidationFailed(
            f"command: too many arguments for template {name!r}: {_short(extra)} "
            f"(it takes {takes}; booleans as --flag)"
        )
    args.update(zip(free, positional, strict=False))
    return args
