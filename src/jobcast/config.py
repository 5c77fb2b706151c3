"""Settings: defaults < TOML config file < JOBCAST_* environment < command-line flags.

Built once at the edge (`load_settings`) and passed down; nothing else reads the environment.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings"]

_config_file: ContextVar[Path | None] = ContextVar("jobcast_config_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBCAST_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path(".jobcast")
    config: Path | None = None
    store: str = Field("sqlite", description="`sqlite` (embedded) or a `redis://` URL")
    #: beyond this many running jobs, new jobs wait `queued` (FIFO)
    max_running_jobs: int = Field(8, ge=1)
    #: per job, stdout and stderr together; past it output is dropped with an `error` notice
    max_output_bytes: int = Field(100 * 1024 * 1024, ge=0)
    heartbeat_seconds: float = Field(15.0, gt=0)
    #: a client that reads nothing for this long is disconnected
    stall_timeout_seconds: float = Field(120.0, gt=0)
    #: between SIGTERM and SIGKILL on cancel, timeout and shutdown
    kill_grace_seconds: float = Field(5.0, ge=0)
    #: how long output may gather in a pipe before it is read; grows with the number of followers
    batch_window_ms: float = Field(10.0, ge=0, le=1000)
    #: how often a running job's output files are fsynced (0: only when the job ends)
    fsync_interval_seconds: float = Field(
        1.0, ge=0, description="fsync running jobs' output this often (0: only at their end)"
    )
    log_level: str = "info"
    #: more names this server answers to (behind a proxy, say); "*" for any
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names besides --host and localhost (`*`: any)"
    )
    #: web pages (`scheme://host:port`) that may stream from and drive this server
    allowed_origins: list[str] = Field(
        default_factory=list, description="Origins (scheme://host:port) whose pages may use the API"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(config: Path | str | None = None, **flags: Any) -> Settings:
    """Build the settings. `flags` left as None fall through to the environment, file and defaults."""
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    if config is None:
        config = Settings().config
    path = Path(config) if config is not None else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(
            f"config file {str(path)!r} does not exist (from --config or JOBCAST_CONFIG)"
        )
    token = _config_file.set(path)
    try:
        return Settings(config=path, **given)
    finally:
        _config_file.reset(token)
