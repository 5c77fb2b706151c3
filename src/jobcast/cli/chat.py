"""`jobcast chat` and `jobcast direct`: start the server's templates from a message or a command
line (POST /chat, POST /direct) and follow the job as `jobcast run` does."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Literal

import click

if TYPE_CHECKING:
    from .jobs import Target

__all__ = ["COMMANDS"]


def _start(
    target: Target,
    how: Literal["chat", "direct"],
    text: str,
    context: tuple[str, ...],
    detach: bool,
) -> int:
    import asyncio

    async def go() -> int:
        from .follow import follow_job

        async with target.async_client() as client:
            if how == "chat":
                job = await client.chat(text, context=context)
            else:
                job = await client.direct(text, context=context)
            if detach:
                click.echo(job.id)
                return 0
            return await follow_job(client, job, forward_interrupt=True)

    return asyncio.run(go())


_context = click.option(
    "-c",
    "--context",
    multiple=True,
    metavar="REF",
    help="A paste ref (`jobcast paste` prints one) the job gets in $JOBCAST_CONTEXT; repeatable.",
)
_detach = click.option(
    "-d", "--detach", is_flag=True, help="Print the job's id and return at once."
)


@click.command(context_settings={"ignore_unknown_options": True})
@_context
@_detach
@click.argument("message", nargs=-1, required=True)
@click.pass_obj
def chat(target: Target, message: tuple[str, ...], context: tuple[str, ...], detach: bool) -> None:
    """Run the server's `chat` template (a coding agent's CLI, say) with MESSAGE, its words
    joined by spaces, as one argument, and follow it.

    \b
      jobcast chat "add tests for the parser"
      jobcast chat -c "$(git diff | jobcast paste)" review this diff

    Ctrl-C and the exit status are `jobcast run`'s: the job's exit code (128+N for signal N,
    124 for a timeout), 2 when jobcast itself failed (no `chat` template, say).
    """
    code = _start(target, "chat", " ".join(message), context, detach)
    raise click.exceptions.Exit(code)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_context
@_detach
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def direct(
    target: Target, command: tuple[str, ...], context: tuple[str, ...], detach: bool
) -> None:
    """Run a server template from a command line, NAME [--flag] [--key=value] [ARG...], and
    follow it: `--flag` sets a boolean parameter, the other words fill the remaining parameters
    in their declared order (GET /templates lists them). One argument is split as a shell would;
    several are taken as the words they are.

    \b
      jobcast direct "test --fast"
      jobcast direct test --fast tests/api

    Ctrl-C and the exit status are `jobcast run`'s: the job's exit code (128+N for signal N,
    124 for a timeout), 2 when jobcast itself failed (an unknown template, a bad argument).
    """
    line = command[0] if len(command) == 1 else shlex.join(command)
    raise click.exceptions.Exit(_start(target, "direct", line, context, detach))


COMMANDS = [chat, direct]
