"""The policy (`[policy]` in the config): what may run, and how much of it.

`Policy.check` is pure: it says whether a `POST /jobs` may go ahead given the caller's scopes and
how many jobs the caller has, and raises the error that names the rule otherwise. `Policy.resolve`
turns a template request into the argv it stands for and applies the default and maximum limits.

Raw-command patterns (`allow`, `deny`) are shell-style wildcards (fnmatch, case-sensitive) matched
against the whole command line: a `command` as given, an `argv` as `shlex.join` writes it
(`rm -rf '/my dir'`). `*` matches anything, spaces and slashes included. Deny wins over allow; a
non-empty `allow` refuses what matches none of it. They guard against mistakes, not against a
determined caller (`sh -c` runs whatever it is given): safe mode with templates is the boundary.
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import MissingScope, PolicyDenied, TooManyRequests, ValidationFailed
from .templates import CHAT, CHAT_PARAM, Template, expand

if TYPE_CHECKING:
    from .models import JobSpec

__all__ = ["RETRY_AFTER", "Policy", "PolicyConfig", "TemplateName", "command_line"]

#: seconds a client refused for a full queue is told to wait
RETRY_AFTER = 5

TemplateName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]

#: who may start what, when auth is on (`scopes` not None); `admin` may do everything
_TEMPLATE_SCOPES = frozenset({"run", "admin"})
_RAW_SCOPES = frozenset({"exec", "admin"})


class PolicyConfig(BaseModel):
    """`[policy]` as written in the config file; every limit unset means none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["safe", "expert"] = Field(
        "expert", description='"safe": only templates may run; "expert": raw commands too'
    )
    allow: list[str] = Field(
        default_factory=list, description="Raw commands must match one of these (if any)"
    )
    deny: list[str] = Field(default_factory=list, description="Raw commands matching are refused")
    max_running_jobs: int | None = Field(
        None, ge=1, description="Jobs running at once (overrides the top-level setting)"
    )
    max_queued_jobs: int | None = Field(
        None, ge=0, description="Jobs waiting `queued`; beyond it 429 with Retry-After"
    )
    max_jobs_per_token: int | None = Field(
        None, ge=1, description="Queued and running jobs per token; beyond it 429"
    )
    default_timeout: float | None = Field(None, gt=0, description="A job's timeout if it sets none")
    max_timeout: float | None = Field(None, gt=0, description="The longest timeout a job may have")
    max_output_bytes: int | None = Field(
        None, ge=0, description="The most output a job may keep (and keeps unless it asks less)"
    )

    @model_validator(mode="after")
    def _bounds(self) -> PolicyConfig:
        if (
            self.default_timeout is not None
            and self.max_timeout is not None
            and self.default_timeout > self.max_timeout
        ):
            raise ValueError(
                f"default_timeout ({self.default_timeout:g}) is above max_timeout "
                f"({self.max_timeout:g})"
            )
        return self


@dataclass(frozen=True)
class Policy:
    """The policy in force and the templates it offers; replaced whole on reload."""

    config: PolicyConfig = field(default_factory=PolicyConfig)
    templates: Mapping[str, Template] = field(default_factory=dict)

    @classmethod
    def build(cls, config: PolicyConfig, templates: Mapping[str, Template]) -> Policy:
        """Check the templates against the limits.

        Raises:
            ValueError: a template's timeout is above `max_timeout`, or the `chat` template
                lacks its `message` parameter.
        """
        top = config.max_timeout
        chat = templates.get(CHAT)
        if chat is not None:
            _check_chat(chat)
        for name, t in templates.items():
            if top is not None and t.timeout is not None and t.timeout > top:
                raise ValueError(
                    f"templates.{name}: timeout {t.timeout:g} is above policy.max_timeout {top:g}"
                )
        return cls(config, dict(templates))

    # -- may it run? ----------------------------------------------------------------------------

    def check(self, spec: JobSpec, scopes: frozenset[str] | None, running_for_token: int) -> None:
        """Whether `spec` may be started by a caller with `scopes` (None: auth is off, every
        scope) who has `running_for_token` jobs queued or running.

        Raises:
            PolicyDenied: a rule refuses it; `rule` names the rule.
            TooManyRequests: the caller has as many jobs as `max_jobs_per_token` allows.
        """
        c = self.config
        if spec.template is not None:
            if scopes is not None and not scopes & _TEMPLATE_SCOPES:
                raise MissingScope(
                    "the token lacks the `run` scope, which starting a template needs"
                )
        else:
            self._check_raw(spec, scopes)
        if spec.timeout is not None and c.max_timeout is not None and spec.timeout > c.max_timeout:
            raise PolicyDenied(
                f"timeout {spec.timeout:g}s is above the policy's max_timeout of "
                f"{c.max_timeout:g}s",
                "max_timeout",
            )
        cap, asked = c.max_output_bytes, spec.max_output_bytes
        if cap is not None and asked is not None and asked > cap:
            raise PolicyDenied(
                f"max_output_bytes {asked} is above the policy's max_output_bytes of {cap}",
                "max_output_bytes",
            )
        if c.max_jobs_per_token is not None and running_for_token >= c.max_jobs_per_token:
            raise TooManyRequests(
                f"you have {running_for_token} jobs queued or running, the most the policy's "
                f"max_jobs_per_token allows; wait for one to finish",
                RETRY_AFTER,
            )

    def _check_raw(self, spec: JobSpec, scopes: frozenset[str] | None) -> None:
        c = self.config
        if c.mode == "safe":
            hint = ", ".join(sorted(self.templates)) or "none are defined"
            raise PolicyDenied(
                "the policy's mode is safe: only templates may run, not raw commands "
                f"(templates: {hint}; GET /templates describes them)",
                "mode=safe",
            )
        if scopes is not None and not scopes & _RAW_SCOPES:
            raise MissingScope(
                "the token lacks the `exec` scope, which a raw command (`command`, `argv`) needs"
            )
        line = command_line(spec)
        for i, pattern in enumerate(c.deny):
            if fnmatch.fnmatchcase(line, pattern):
                raise PolicyDenied(
                    f"the command matches the policy's deny pattern {pattern!r}", f"deny[{i}]"
                )
        if c.allow and not any(fnmatch.fnmatchcase(line, p) for p in c.allow):
            raise PolicyDenied("the command matches none of the policy's allow patterns", "allow")

    def admit(self, running: int, queued: int, max_running: int) -> None:
        """Whether one more job fits: it runs at once, or there is room in the queue.

        Raises:
            TooManyRequests: `max_queued_jobs` are waiting already.
        """
        limit = self.config.max_queued_jobs
        if limit is not None and running >= max_running and queued >= limit:
            raise TooManyRequests(
                f"{queued} jobs are queued, the most the policy's max_queued_jobs allows; "
                f"try again in a few seconds",
                RETRY_AFTER,
            )

    # -- what runs ------------------------------------------------------------------------------

    def resolve(self, spec: JobSpec) -> JobSpec:
        """The spec that runs: a template's argv, cwd, env and pty filled in, and the limits'
        defaults applied (timeout, output cap).

        Raises:
            ValidationFailed: no such template, or an argument breaks its parameter's rule.
        """
        from .models import JobSpec

        c = self.config
        if spec.template is None:
            # Nothing to check again (the hot path): only the defaults, if the policy has any.
            update: dict[str, float | int] = {}
            default = c.default_timeout or c.max_timeout
            if spec.timeout is None and default is not None:
                update["timeout"] = default
            if spec.max_output_bytes is None and c.max_output_bytes is not None:
                update["max_output_bytes"] = c.max_output_bytes
            return spec.model_copy(update=update) if update else spec
        data = spec.model_dump(exclude={"template", "args"})
        template = self.templates.get(spec.template)
        if template is None:
            known = ", ".join(sorted(self.templates)) or "none are defined"
            raise ValidationFailed(
                f"template: no template {spec.template!r} on this server (templates: {known};"
                " GET /templates describes them)"
            )
        data["argv"] = expand(spec.template, template, spec.args)
        data["command"] = None
        data.update(cwd=template.cwd, env=dict(template.env), pty=template.pty)
        data["record_input"] = spec.record_input or template.record_input
        # The request's extractors come after the template's, and replace those of their names.
        own = {x["name"] for x in data["extract"]}
        data["extract"] = [
            *(x.model_dump() for x in template.extract if x.name not in own),
            *data["extract"],
        ]
        timeout = spec.timeout
        if template.timeout is not None:
            timeout = min(timeout or template.timeout, template.timeout)
        if timeout is None:
            timeout = c.default_timeout or c.max_timeout
        data["timeout"] = timeout
        if data["max_output_bytes"] is None:
            data["max_output_bytes"] = c.max_output_bytes
        try:
            return JobSpec.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'job'}: {err['msg']}" for err in e.errors()
            )
            raise ValidationFailed(
                f"template {spec.template!r} gives a bad job: {problems}"
            ) from None

    @property
    def max_running_jobs(self) -> int | None:
        return self.config.max_running_jobs


def _check_chat(chat: Template) -> None:
    """`POST /chat` gives the chat template its message and nothing else."""
    message = chat.params.get(CHAT_PARAM)
    if message is None or message.type != "string":
        raise ValueError(
            f"templates.{CHAT}: POST /chat passes the message as the string parameter "
            f'`{CHAT_PARAM}`; add params.{CHAT_PARAM} = {{ type = "string" }} and use '
            f"{{{CHAT_PARAM}}} in `command`"
        )
    needy = [p for p, param in chat.params.items() if p != CHAT_PARAM and param.default is None]
    if needy:
        raise ValueError(
            f"templates.{CHAT}: parameter(s) {', '.join(needy)} need a default: POST /chat "
            f"gives only `{CHAT_PARAM}`"
        )


def command_line(spec: JobSpec) -> str:
    """What `allow` and `deny` patterns are matched against."""
    return spec.command if spec.command is not None else shlex.join(spec.argv or [])
