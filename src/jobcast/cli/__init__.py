"""The `jobcast` command line. Every command but `serve` is a thin layer over the clients.

Each command imports what it uses when it runs, so starting the command line imports little
more than click: the one-shot commands (`ls`, `show`, `cancel`, `status`, ...) use the light
client of the standard library (`jobcast.client.plain`) and never load pydantic, httpx or rich
(rich only to draw on a terminal); the streaming ones load the full clients; `serve` loads the
server.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import JobcastError, Unauthorized
from .attach import COMMANDS as SESSIONS
from .chat import COMMANDS as CHAT
from .completion import completion
from .housekeeping import COMMANDS as HOUSEKEEPING
from .jobs import COMMANDS, Target
from .operator import COMMANDS as OPERATOR
from .serve import serve

__all__ = ["main"]


class JobcastGroup(click.Group):
    """Turns the errors every command shares into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Unauthorized as e:
            from ..client.endpoint import resolve_token, resolve_url, token_hint

            target = ctx.obj if isinstance(ctx.obj, Target) else Target(None, None)
            url = resolve_url(target.url)
            if resolve_token(target.token, url) is None:
                said = f"the server at {url} needs a token, and none was found"
            else:
                said = f"the server at {url} refused the token ({e.message})"
            click.echo(f"jobcast: {said}; {token_hint(url)}", err=True)
            raise click.exceptions.Exit(2) from None
        except JobcastError as e:
            click.echo(f"jobcast: {e.message}", err=True)
            raise click.exceptions.Exit(2) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`jobcast logs X | head`): stop quietly, as `cat` would, and
            # keep Python from complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None


@click.group(cls=JobcastGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="JOBCAST_URL",
    metavar="URL",
    help="The jobcast server. [env JOBCAST_URL; default http://127.0.0.1:8080]",
)
@click.option(
    "--token",
    envvar="JOBCAST_TOKEN",
    metavar="TOKEN",
    help="API token, sent as `Authorization: Bearer`. [env JOBCAST_TOKEN; default for a local "
    "server: the token file in JOBCAST_DATA_DIR or ./.jobcast]",
)
@click.version_option(__version__, prog_name="jobcast")
@click.pass_context
def main(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Run commands in the background and stream their output, live and durably, to any number
    of clients.

    \b
      jobcast serve                        start the server (here: 127.0.0.1:8080)
      jobcast run -- make test             run a command, follow it, exit with its code
      jobcast run -d --name build -- make  start it and return at once
      jobcast follow build                 follow it again, from its start
      jobcast ls                           what ran, what runs

    Errors exit with 2, Ctrl-C with 130; `run` and `follow` exit with the job's exit code.
    """
    ctx.obj = Target(url, token)


for _command in [*COMMANDS, *SESSIONS, *HOUSEKEEPING, *OPERATOR, *CHAT]:
    main.add_command(_command)
main.add_command(serve)
main.add_command(completion)
