"""Shell completion: `jobcast completion bash|zsh|fish` prints the script (click's own), and job
arguments complete with the names and ids of the jobs on the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

__all__ = ["COMPLETE_VAR", "complete_job", "completion"]

#: the variable click's generated scripts set to ask `jobcast` for completions
COMPLETE_VAR = "_JOBCAST_COMPLETE"
#: a completion waits this long for the server at most: a shell must not hang on a Tab
TIMEOUT = 0.5
#: the newest jobs offered
LIMIT = 200


def complete_job(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The names, then the ids, of the newest jobs on the server that start with `incomplete`;
    nothing when the server cannot be reached."""
    from click.shell_completion import CompletionItem

    from ..client.plain import PlainClient

    # The group's callback does not run while completing: read its options from the context.
    root = ctx.find_root().params
    try:
        with PlainClient(root.get("url"), root.get("token"), timeout=TIMEOUT) as client:
            jobs = client.get("/jobs", [("limit", str(LIMIT))])["jobs"]
    except Exception:  # never a traceback, nor a message, in the middle of the user's command line
        return []
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    for job in jobs:
        described = (
            f"{job.get('status', '')}: {job.get('command') or ' '.join(job.get('argv', []))}"
        )
        if job.get("name"):
            names.setdefault(str(job["name"]), described)
        ids[str(job["id"])] = described
    return [
        CompletionItem(value, help=help)
        for value, help in (*names.items(), *ids.items())
        if value.startswith(incomplete)
    ]


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL: commands, options, and job names and ids (asked
    of the server as you press Tab).

    \b
      bash   add to ~/.bashrc:                   eval "$(jobcast completion bash)"
      zsh    add to ~/.zshrc:                    eval "$(jobcast completion zsh)"
      fish   add to ~/.config/fish/config.fish:  jobcast completion fish | source
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the choices are click's own shells
    click.echo(cls(ctx.find_root().command, {}, "jobcast", COMPLETE_VAR).source())
