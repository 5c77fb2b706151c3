"""Settings: defaults < TOML config file < JOBCAST_* environment < command-line flags.

Built once at the edge (`load_settings`) and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import tomllib
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from .extract import Extractor, unique_names
from .models import WebhookURL
from .policy import Policy, PolicyConfig, TemplateName
from .templates import Template
from .tokenfile import ADMIN_NAME
from .webhooks import WebhookConfig

__all__ = [
    "COMPAT_PROFILES",
    "ConfigError",
    "Scope",
    "Settings",
    "SourceConfig",
    "TokenConfig",
    "is_loopback",
    "load_settings",
]


def safe_store_url(store: str) -> str:
    """The store setting without its password (for messages and `/status`)."""
    parts = urlsplit(store)
    if parts.password is None:
        return store
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}{port}"
    return parts._replace(netloc=netloc).geturl()


#: the systems jobcast has a drop-in profile for (shared/seeds/, api/compat/)
COMPAT_PROFILES = ("nstar", "bolt", "cbos", "agents", "nebula")


class ConfigError(ValueError):
    """Settings that cannot be used; the message is one line naming the setting and its source."""


class Scope(StrEnum):
    """What a token may do. `admin` includes every other scope, `exec` includes `run` (a
    template's command is one that a raw command could run as well), and `read` includes
    `metrics`; no other includes another."""

    #: see jobs, their events and output, and the streaming statistics
    READ = "read"
    #: start jobs from the operator's templates
    RUN = "run"
    #: start raw commands (`command`, `argv`)
    EXEC = "exec"
    #: send input, signals, resizes, and cancel
    CONTROL = "control"
    #: everything, including delete and prune (and the trace)
    ADMIN = "admin"
    #: scrape `GET /metrics` and nothing else (a Prometheus server's token); `read` includes it
    METRICS = "metrics"


class TokenConfig(BaseModel):
    """One `[[tokens]]` table: a named token (or its sha256), its scopes, and the labels of the
    only jobs it may see and drive (none: every job)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    #: never shown: SecretStr keeps it out of reprs, and `_describe` out of error messages
    token: SecretStr | None = None
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    scopes: list[Scope] = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_secret(self) -> TokenConfig:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(f"token {self.name!r} needs exactly one of `token` or `token_sha256`")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError(f"token {self.name!r} has an empty `token`")
        return self

    def digest(self) -> bytes:
        """The sha256 of the token, which is all the server keeps of it."""
        if self.token_sha256 is not None:
            return bytes.fromhex(self.token_sha256)
        assert self.token is not None
        return hashlib.sha256(self.token.get_secret_value().encode()).digest()


_config_file: ContextVar[Path | None] = ContextVar("jobcast_config_file", default=None)


class SourceConfig(BaseModel):
    """One `[[sources]]` table: the tmux or screen session a watched file records, so that
    input and interrupts sent to the source reach it (`tmux send-keys`, `screen -X stuff`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="The file, as a --watch pattern matches it")
    tmux: str | None = Field(None, min_length=1, max_length=200, description="tmux target")
    screen: str | None = Field(None, min_length=1, max_length=200, description="screen session")

    @model_validator(mode="after")
    def _one_session(self) -> SourceConfig:
        if (self.tmux is None) == (self.screen is None):
            raise ValueError(f"source {self.path!r} needs exactly one of `tmux` or `screen`")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBCAST_", frozen=True, extra="ignore")

    #: the flags these settings were built with, which a reread keeps above the file
    _flags: dict[str, Any] = PrivateAttr(default_factory=dict)

    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0: every interface)")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on")
    data_dir: Path = Field(
        Path(".jobcast"), description="Where jobs, events and output are kept (created 0700)"
    )
    config: Path | None = Field(None, description="A TOML file of these settings")
    store: str = Field("sqlite", description="`sqlite` (embedded) or a `redis://` URL")
    #: beyond this many running jobs, new jobs wait `queued` (FIFO)
    max_running_jobs: int = Field(
        8, ge=1, description="Jobs running at once; more wait `queued`, first in first out"
    )
    #: per job, stdout and stderr together; past it output is dropped with an `error` notice
    max_output_bytes: int = Field(
        100 * 1024 * 1024,
        ge=0,
        description="Output kept per job (stdout and stderr together); the rest is dropped",
    )
    heartbeat_seconds: float = Field(
        15.0, gt=0, description="An SSE comment or WebSocket ping this often on idle streams"
    )
    #: a client that reads nothing for this long is disconnected
    stall_timeout_seconds: float = Field(
        120.0, gt=0, description="Disconnect a client that reads nothing for this long"
    )
    #: between SIGTERM and SIGKILL on cancel, timeout and shutdown
    kill_grace_seconds: float = Field(
        5.0, ge=0, description="Between SIGTERM and SIGKILL on cancel, timeout and shutdown"
    )
    #: how long output may gather in a pipe before it is read; grows with the number of followers
    batch_window_ms: float = Field(
        10.0, ge=0, le=1000, description="Output gathers this long in a job's pipe before a read"
    )
    #: how often a running job's output files are fsynced (0: only when the job ends)
    fsync_interval_seconds: float = Field(
        1.0, ge=0, description="Fsync running jobs' output this often (0: only at their end)"
    )
    #: Retention, applied by the server every `retention_interval_seconds` (and at start) to
    #: finished jobs only, oldest first; unset, a rule deletes nothing. Running and queued jobs are
    #: never deleted, nor counted.
    retention_days: float | None = Field(
        None, gt=0, description="Delete finished jobs that ended more than this many days ago"
    )
    retention_max_jobs: int | None = Field(
        None, ge=1, description="Keep at most this many finished jobs (the newest)"
    )
    retention_max_bytes: int | None = Field(
        None, ge=1, description="Keep at most this many bytes of finished jobs' output (the newest)"
    )
    retention_interval_seconds: float = Field(
        60.0, gt=0, description="How often the retention rules are applied"
    )
    #: the largest paste `POST /pastes` stores (413 beyond)
    max_paste_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="The largest paste stored, in bytes (413 beyond)"
    )
    #: the trace ledger (`<data-dir>/trace.jsonl`) is rotated past this size
    trace_max_bytes: int = Field(
        16 * 1024 * 1024, ge=4096, description="Rotate trace.jsonl once it would grow past this"
    )
    trace_keep_files: int = Field(
        5, ge=0, description="Rotated ledgers kept (trace.jsonl.1 is the newest); older ones go"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="The server's log: debug, info, warning or error"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="The server's log on stderr: `text` lines, or one JSON object a line"
    )
    #: more names this server answers to (behind a proxy, say); "*" for any
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names besides --host and localhost (`*`: any)"
    )
    #: web pages (`scheme://host:port`) that may stream from and drive this server
    allowed_origins: list[str] = Field(
        default_factory=list, description="Origins (scheme://host:port) whose pages may use the API"
    )
    #: `[policy]` and `[templates.NAME]`: reloaded on SIGHUP and when the config file changes
    policy: PolicyConfig = Field(
        default_factory=PolicyConfig, description="What may run, and how much (a TOML table)"
    )
    templates: dict[TemplateName, Template] = Field(
        default_factory=dict, description="Commands with typed parameters (TOML tables)"
    )

    #: `[[extract]]`: extractors run over every job's lines (a job's own of the same name wins)
    extract: Annotated[list[Extractor], AfterValidator(unique_names)] = Field(
        default_factory=list, description="Named patterns matched in every job's output"
    )
    detect_progress: bool = Field(
        True, description="Read progress (42%, 3/10, bars, ::progress, OSC 9;4) from output"
    )
    #: `[[webhooks]]`: told of every job's end (or start); see the README's "Webhooks"
    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="URLs told of every job's end (TOML tables)"
    )
    #: the URLs a job's own `webhook` may name; none by default, so a client cannot make the
    #: server post to whatever it likes (its own network included)
    webhook_allow: list[WebhookURL] = Field(
        default_factory=list,
        description="URL prefixes a job's own `webhook` may post to (host may be `*.domain`)",
    )
    webhook_attempts: int = Field(
        5, ge=1, le=100, description="Attempts per webhook delivery before it is given up"
    )
    webhook_backoff_seconds: float = Field(
        10.0, gt=0, description="Wait before a webhook's second attempt; doubles at each next"
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="How long one webhook attempt may take (connect and answer)"
    )

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value == "sqlite":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(
                "must be `sqlite` or a Redis URL: redis://HOST:PORT/DB (rediss:// for TLS, "
                "redis://:PASSWORD@HOST:PORT/DB with a password)"
            )
        return value

    #: the drop-in profiles (api/compat): where they are mounted, and which are switched off
    compat_prefix: str = Field(
        "/compat",
        pattern=r"^(/[A-Za-z0-9._-]+)*$",
        description='Drop-in profiles are served under PREFIX/SYSTEM/ ("": at the root, where '
        "their paths do not collide with jobcast's own)",
    )
    compat_off: list[Literal[COMPAT_PROFILES]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="Drop-in profiles switched off (nstar, bolt, cbos, agents, nebula)",
    )

    #: what a `get_buffer` message (/ws, the cbos profile) sends of a job's output by default
    buffer_bytes: int = Field(
        100_000,
        ge=1,
        le=1 << 20,
        description="Bytes of a job's latest output a get_buffer message sends by default",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    #: sources: files tailed as read-only streams in the same log as jobs (`sources/`)
    watch: list[str] = Field(
        default_factory=list,
        description="Tail the files this glob matches (new ones too) as streams named after them",
    )
    watch_roots: list[str] = Field(
        default_factory=list,
        description="The only directories watched files may be in, symlinks resolved (default: "
        "the --watch patterns' own directories)",
    )
    #: `[[sources]]`: the sessions behind watched files, for input (TOML tables)
    sources: list[SourceConfig] = Field(
        default_factory=list, description="tmux/screen sessions of watched files (TOML tables)"
    )

    @model_validator(mode="after")
    def _watch_fits(self) -> Settings:
        from .sources.paths import matches, parse_patterns, resolve_roots

        patterns = parse_patterns(self.watch)
        resolve_roots(self.watch_roots, patterns)
        for source in self.sources:
            if not matches(os.path.abspath(os.path.expanduser(source.path)), patterns):
                raise ValueError(
                    f"[[sources]] path {source.path!r} is matched by no --watch pattern"
                )
        return self

    @model_validator(mode="after")
    def _policy_fits(self) -> Settings:
        self.controls()
        return self

    def controls(self) -> Policy:
        """The policy these settings describe, its templates checked against its limits."""
        return Policy.build(self.policy, self.templates)

    def reread(self) -> Settings:
        """The settings as the config file (and environment) say now, the flags given at start
        still above them (a reload must not undo `--log-level warning`).

        Raises:
            ConfigError: as `load_settings`.
        """
        return load_settings(self.config, **self._flags)

    #: `token`: every endpoint but /status needs a token; `none`: nobody is asked (loopback only)
    auth: Literal["token", "none"] = Field(
        "token",
        description="`token`: requests need a token (one is made into DATA_DIR/token); "
        "`none`: no auth, on a loopback --host only",
    )
    #: `[[tokens]]` in the config file (or JSON in JOBCAST_TOKENS); no flag
    tokens: list[TokenConfig] = Field(
        default_factory=list, description="API tokens, beside the generated admin token"
    )

    @field_validator("tokens")
    @classmethod
    def _distinct_tokens(cls, tokens: list[TokenConfig]) -> list[TokenConfig]:
        names: set[str] = set()
        digests: dict[bytes, str] = {}
        for t in tokens:
            if t.name == ADMIN_NAME:
                raise ValueError(
                    f"the token name {ADMIN_NAME!r} is the generated token's "
                    "(DATA_DIR/token); give this one another name"
                )
            if t.name in names:
                raise ValueError(f"two tokens are named {t.name!r}")
            names.add(t.name)
            other = digests.setdefault(t.digest(), t.name)
            if other != t.name:
                raise ValueError(f"tokens {other!r} and {t.name!r} are the same token")
        return tokens

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _CbosEnvironment(settings_cls),
        ]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


class _CbosEnvironment(PydanticBaseSettingsSource):
    """CBOS's own variables (seed 002), below jobcast's: `CBOS_STREAM_STREAM_DIR` is a watch of
    the typescripts in that directory, `CBOS_STREAM_MAX_BUFFER_SIZE` the get_buffer size."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is in __call__

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        stream_dir = os.environ.get("CBOS_STREAM_STREAM_DIR")
        if stream_dir:
            out["watch"] = [os.path.join(stream_dir, "*.typescript")]
        size = os.environ.get("CBOS_STREAM_MAX_BUFFER_SIZE")
        if size:
            out["buffer_bytes"] = size  # validated (and refused if bad) as the setting
        return out


def load_settings(config: Path | str | None = None, **flags: Any) -> Settings:
    """Build the settings. `flags` left as None fall through to the environment, file and defaults.

    Raises:
        ConfigError: a missing or unreadable config file, a key in it that is no setting, or a
            value out of range (wherever it came from).
    """
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    try:
        if config is None:
            config = Settings().config
        path = Path(config) if config is not None else None
        if path is not None:
            _check_file(path)
        token = _config_file.set(path)
        try:
            settings = Settings(config=path, **given)
        finally:
            _config_file.reset(token)
        settings._flags = given
    except ValidationError as e:
        raise ConfigError(f"invalid settings: {_describe(e)}") from None
    except SettingsError as e:
        # Says which variable, never its value (JOBCAST_TOKENS holds tokens).
        raise ConfigError(f"invalid settings: {e}; a list in the environment is JSON") from None
    if settings.auth == "none" and not is_loopback(settings.host):
        raise ConfigError(
            f"auth = 'none' is refused on --host {settings.host!r}: anyone who can reach it could "
            "run commands; serve on 127.0.0.1 (or ::1), or leave auth at 'token'"
        )
    return settings


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`: `localhost`, 127.0.0.0/8 or ::1 (not the
    wildcards 0.0.0.0 and ::, nor another name, which may resolve to anything)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_file(path: Path) -> None:
    """Refuse a config file with keys that are no setting: a misspelt or not yet supported one
    (a `[policy]` table, say) silently ignored would leave the server less safe than written."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(path)!r} does not exist (from --config or JOBCAST_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    known = [name for name in Settings.model_fields if name != "config"]
    unknown = [key for key in data if key not in known]
    if not unknown:
        return

    def named(key: str) -> str:
        close = difflib.get_close_matches(key, known, n=1)
        return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)

    raise ConfigError(
        f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(named, unknown))} "
        f"in config file {str(path)!r}; `jobcast serve --help` lists them"
    )


#: the parts of a `[[tokens]]` table an error may show: never the token, nor a key mistyped
#: beside it (its value may be the token)
_SHOWN_TOKEN_FIELDS = {"name", "scopes", "labels"}
#: of a `[[webhooks]]` table, what an error may show (not the secret)
_SHOWN_WEBHOOK_FIELDS = {"url", "events"}


def _describe(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg'].removeprefix('Value error, ')}"
        + (f" (got {err['input']!r})" if _shown(err["loc"]) else "")
        for err in e.errors()
    )


def _shown(loc: tuple[int | str, ...]) -> bool:
    """Whether an error at `loc` may show its input: anywhere but in `tokens`, only in the parts
    of a token's table that are not secret (a whole table, or a mistyped key, may be the token)."""
    shown = {"tokens": _SHOWN_TOKEN_FIELDS, "webhooks": _SHOWN_WEBHOOK_FIELDS}
    if not loc:
        return False  # a check of the whole settings: its input is all of them, secrets too
    if loc[0] not in shown:
        return True
    fields = [p for p in loc[1:] if isinstance(p, str)]
    return bool(fields) and fields[0] in shown[str(loc[0])]
