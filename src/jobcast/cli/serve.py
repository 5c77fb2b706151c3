"""`jobcast serve`: settings from flags, environment and config file, then the server (imported lazily)."""

from __future__ import annotations

import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, NoReturn

import click

__all__ = ["serve"]


def _flag_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, multiple) for a Settings field's annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is list:
        return str, True
    if origin in (types.UnionType, typing.Union) and args:
        return _flag_type(args[0])
    if annotation is Path:
        return click.Path(path_type=Path), False
    return {int: int, float: float, bool: bool}.get(annotation, str), False


def _shown(default: Any) -> str:
    """A default as one would type it: `.jobcast`, `8080`, `none`."""
    if default is None or default == []:
        return "none"
    return str(default)


#: settings too structured for a flag, TOML tables: the config file (or JSON in
#: JOBCAST_<NAME>) gives them
TABLES = ("policy", "templates", "tokens", "webhooks", "sources")


def _settings_options() -> list[click.Parameter]:
    """One flag per setting, named like the setting (`max_output_bytes` -> `--max-output-bytes`)."""
    from ..config import Settings

    options: list[click.Parameter] = []
    for name, field in Settings.model_fields.items():
        if name in TABLES:
            continue
        kind, multiple = _flag_type(field.annotation)
        helptext = field.description or ""
        env = f"JOBCAST_{name.upper()}"
        default = _shown(field.get_default(call_default_factory=True))
        if multiple:
            helptext += "; repeat the flag for more"
        options.append(
            click.Option(
                ["--" + name.replace("_", "-"), name],
                type=kind,
                multiple=multiple,
                default=None,
                help=f"{helptext} [env {env}; default {default}]",
            )
        )
    return options


class SettingsCommand(click.Command):
    """A command whose options are the server's settings, made on first use (to parse, to show
    help): building them imports the settings, hence pydantic, which no other command needs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings_added = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._settings_added:
            self._settings_added = True
            self.params[:0] = _settings_options()
        return super().get_params(ctx)


@click.command(cls=SettingsCommand)
def serve(**flags: Any) -> None:
    """Run the jobcast server (Ctrl-C or SIGTERM stops it gracefully).

    Every setting comes from a flag, else JOBCAST_<NAME> in the environment, else the TOML file
    given by --config, else its default.
    """
    from ..config import ConfigError, load_settings

    if flags.get("port") is None and "JOBCAST_PORT" not in os.environ and "PORT" in os.environ:
        # As nstar's server (seed 000) did, and as platforms that set PORT expect.
        flags["port"] = os.environ["PORT"]
    try:
        settings = load_settings(flags.pop("config"), **flags)
    except ConfigError as e:
        _fail(str(e))
    if settings.store != "sqlite":
        # Before the data dir is touched, rather than once the server has half started.
        from ..store.redis import ping

        try:
            ping(settings.store)
        except ConnectionError as e:
            _fail(str(e))
    from ..datadir import DataDirInUse, claim

    try:
        claim(settings.data_dir, f"http://{settings.host}:{settings.port}")
    except DataDirInUse as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot use data dir {str(settings.data_dir)!r}: {e}")
    if settings.auth == "token":
        from ..tokenfile import ensure_token

        try:
            ensure_token(settings.data_dir)
        except OSError as e:
            _fail(f"cannot write the admin token into {str(settings.data_dir)!r}: {e}")
    from ..api.app import CannotListen, run_server
    from ..api.compat import collisions

    if (problem := collisions(settings)) is not None:
        _fail(problem)

    try:
        run_server(settings)
    except CannotListen as e:
        _fail(str(e))


def _fail(message: str) -> NoReturn:
    """A start-up failure: one line, exit 2, no traceback."""
    click.echo(f"jobcast serve: {message}", err=True)
    sys.exit(2)
