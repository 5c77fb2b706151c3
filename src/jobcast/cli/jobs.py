"""The job commands: run, follow, logs, ls, show, cancel, send, signal, watch, status, stats."""

# Each is a thin layer over `jobcast.client`: it builds arguments, calls the client, and prints.
# `run` and `follow` use `AsyncClient`, so Ctrl-C (`follow.py`) and stdin are handled on the event
# loop while output streams (and `send` shares their wait for a job that cannot take input yet);
# the other commands use `Client`.

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import click

from ..client.endpoint import DEFAULT_URL, job_path
from . import render
from .completion import complete_job

if TYPE_CHECKING:
    from ..client.asyncio import AsyncClient
    from ..client.plain import PlainClient
    from ..client.sync import Client

__all__ = ["COMMANDS", "STATUSES", "Target", "complete_job"]

#: `JobStatus`'s values, spelt out so that `ls --status` needs no models to parse its options
#: seconds a cancel may take before `jobcast cancel` says that it waits for the grace period
CANCEL_PATIENCE = 1.0
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out", "lost")
#: `JOB_KINDS` (models), spelt out likewise for `ls --kind`
KINDS = ("job", "source")


@dataclass(frozen=True, slots=True)
class Target:
    """The server the global `--url` / `--token` options point at."""

    url: str | None
    token: str | None

    def client(self) -> Client:
        _without_httpx_cli()
        from ..client.sync import Client

        return Client(self.url, self.token)

    def async_client(self) -> AsyncClient:
        _without_httpx_cli()
        from ..client.asyncio import AsyncClient

        return AsyncClient(self.url, self.token)

    def plain(self, timeout: float | None = None) -> PlainClient:
        """The light client of the one-shot commands (no httpx, no pydantic to import)."""
        from ..client.plain import DEFAULT_TIMEOUT, PlainClient

        return PlainClient(self.url, self.token, timeout=timeout or DEFAULT_TIMEOUT)


def _without_httpx_cli() -> None:
    """Import httpx without its own command line, which it loads whenever rich and pygments are
    installed (as they are here): a third of the start-up of `jobcast run`. Only in this process,
    where nobody calls `httpx.main`; httpx's fallback for a missing CLI takes its place."""
    if "httpx" in sys.modules:
        return
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # None: "not there"
    try:
        import httpx  # noqa: F401
    except ImportError:  # a version that needs it: import it whole
        sys.modules.pop("httpx._main", None)
        sys.modules.pop("httpx", None)


pass_target = click.make_pass_decorator(Target)


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx, param)
        out[key] = value
    return out


def _json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")(func)


# -- following ----------------------------------------------------------------------------------


async def _run(
    target: Target,
    command: str | list[str],
    detach: bool,
    template: str | None = None,
    **options: Any,
) -> int:
    import asyncio

    _without_httpx_cli()
    from .follow import follow_job
    from .stdin import forward_stdin

    async with target.async_client() as client:
        if template is not None:
            job = await client.run_template(template, **options)
        else:
            job = await client.run(command, **options)
        if detach:
            click.echo(job.id)
            return 0
        if options.get("pty") and sys.stdin.isatty() and sys.stdout.isatty():
            # A terminal job run from a terminal: this one becomes its terminal (raw, keys).
            from .terminal import attach_session

            return await attach_session(client, job)
        feeder = asyncio.create_task(forward_stdin(client, job.id)) if options["stdin"] else None
        try:
            return await follow_job(client, job, forward_interrupt=True)
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.wait([feeder])


#: A single word run as a program, not by the shell: shlex.quote's safe characters, less `=`
#: (`A=1` is an assignment to the shell).
_PLAIN_WORD = re.compile(r"[\w@%+:,./-]+", re.ASCII)


def _job_command(words: tuple[str, ...]) -> str | list[str]:
    """Several words are a program and its arguments; so is one plain word. One word with shell
    syntax (spaces, quotes, `$`, `|`, `;`, ...) is a command line for `sh -c`."""
    if len(words) > 1 or _PLAIN_WORD.fullmatch(words[0]):
        return list(words)
    return words[0]


def _is_local(url: str) -> bool:
    """Whether the server at `url` runs on this machine: a loopback address or `localhost`."""
    host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _here() -> str | None:
    """This directory as the shell names it ($PWD, symlinks kept) if that is where we are; None
    if it no longer exists."""
    try:
        here = os.getcwd()
    except OSError:
        return None
    pwd = os.environ.get("PWD", "")
    with contextlib.suppress(OSError):
        if os.path.isabs(pwd) and os.path.samefile(pwd, here):
            return pwd
    return here


def _environment_here() -> dict[str, str]:
    # JOBCAST_URL and JOBCAST_TOKEN are this CLI's; a token is a secret the job must not get.
    return {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--pty",
    is_flag=True,
    help="Run in a pseudo-terminal (stdout and stderr merge); from a terminal, attach to it.",
)
@click.option("--name", help="A name for the job, usable instead of its id while it is active.")
@click.option("-d", "--detach", is_flag=True, help="Print the job's id and return at once.")
@click.option(
    "--cwd",
    type=click.Path(),
    help="Working directory (relative to this one). Default: this one when the server is on "
    "this machine (a loopback URL), else the server's own.",
)
@click.option(
    "-e",
    "--env",
    multiple=True,
    callback=_pairs,
    metavar="K=V",
    help="Set a variable (repeatable).",
)
@click.option(
    "--env-from-here",
    is_flag=True,
    help="Give the job this environment, all of it (but JOBCAST_*), instead of the server's, "
    "as pueue does; -e adds to it. It is stored with the job.",
)
@click.option(
    "--merge-stderr",
    is_flag=True,
    help="Send the job's stderr into its stdout (as 2>&1): the exact order of the writes, "
    "all of it on this stdout.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="End the job (timed_out) if it runs longer.",
)
@click.option(
    "-i",
    "--stdin",
    is_flag=True,
    help="Forward this stdin to the job's (with --detach: keep it open for `jobcast send`).",
)
@click.option(
    "--record-input",
    is_flag=True,
    help="Keep what is typed into the job for its recording (`jobcast rec`), which only tokens "
    "that may drive it get (with --pty or --stdin).",
)
@click.option("-l", "--label", multiple=True, callback=_pairs, metavar="K=V", help="Label it.")
@click.option(
    "-t",
    "--template",
    metavar="NAME",
    help="Run the server's template NAME; COMMAND is then its arguments, PARAM=VALUE each "
    "(`jobcast run -t test path=tests/`); GET /templates lists them.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_target
def run(target: Target, /, command: tuple[str, ...], **opts: Any) -> None:
    """Run COMMAND on the server and follow it, as if it ran here.

    Several arguments are a program and its arguments (`jobcast run -- pytest -q tests/`), and
    so is one plain word (`jobcast run make`). One argument with shell syntax is a command line
    for `sh -c` (`jobcast run 'make && make test'`). Put `--` before a command that has options
    of its own. On a server on this machine, the job runs in this directory.

    Its stdout and stderr come out on this one's. Each of the two is exact; their order
    relative to each other is the order in which the server read them, which is the order of
    the writes unless both are written within a fraction of a millisecond (or faster than the
    server reads); --merge-stderr makes it exact. Ctrl-C interrupts the job (SIGINT), a second
    Ctrl-C detaches and leaves it running. A dropped connection is resumed without losing
    output.

    With --pty from a terminal, this terminal becomes the job's, as `jobcast attach` makes it:
    raw mode, every key (Ctrl-C included) to the job, Ctrl-] detaches (exit 0).

    \b
    Exit status, never 0 for a job that did not succeed:
      N        the job's own exit code
      128+N    signal N ended it (130: SIGINT, as after Ctrl-C; 143: SIGTERM, as on cancel)
      124      it ran past --timeout (as timeout(1))
      255      it was lost (the server stopped while it ran)
      143      it was cancelled before it ran (as if by SIGTERM)
      127      its program was not found (as a shell says "command not found")
      126      its program cannot be run (not executable, a directory)
      1        it could not start otherwise (no such working directory)
      130      you detached with a second Ctrl-C (the job goes on)
      0        you detached from a --pty job's terminal with Ctrl-] (the job goes on)
      2        jobcast itself failed (bad usage, server unreachable)
    """
    import shutil

    if opts["template"] is not None:
        _run_template(target, opts, command)
    if not command:
        raise click.UsageError("give a COMMAND to run (or --template NAME)")
    cols, rows = shutil.get_terminal_size() if opts["pty"] and sys.stdout.isatty() else (80, 24)
    spec = _job_command(command)
    opts["labels"] = opts.pop("label")
    if opts["cwd"]:
        opts["cwd"] = os.path.normpath(os.path.join(_here() or os.getcwd(), opts["cwd"]))
    elif _is_local(target.url or DEFAULT_URL):
        opts["cwd"] = _here()
    if opts.pop("env_from_here"):
        opts["env"] = {**_environment_here(), **opts["env"]}
        opts["inherit_env"] = False
    opts["stderr"] = "merge" if opts.pop("merge_stderr") else "pipe"
    if opts["pty"] and sys.stdout.isatty() and os.environ.get("TERM"):
        # This terminal will be the job's (attach): its programs should speak this one's
        # language, as ssh passes TERM on.
        opts["env"] = {"TERM": os.environ["TERM"], **opts["env"]}
    import asyncio

    raise click.exceptions.Exit(asyncio.run(_run(target, spec, cols=cols, rows=rows, **opts)))


#: `run` options that a template sets itself
_TEMPLATE_SETS = ("pty", "cwd", "env", "env_from_here")


def _run_template(target: Target, opts: dict[str, Any], words: tuple[str, ...]) -> NoReturn:
    """`run -t NAME PARAM=VALUE...`: values go as text; the server reads integers and booleans
    from it by the template's parameter types, and names a bad one."""
    given = [f"--{k.replace('_', '-')}" for k in _TEMPLATE_SETS if opts[k]]
    if given:
        raise click.UsageError(f"{', '.join(given)}: the template sets it; leave it out")
    args: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise click.UsageError(f"template arguments are PARAM=VALUE, not {word!r}")
        args[key] = value
    import asyncio

    options = {
        "template": opts["template"],
        "args": args,
        "detach": opts["detach"],
        "stdin": opts["stdin"],
        "record_input": opts["record_input"],
        "timeout": opts["timeout"],
        "name": opts["name"],
        "labels": opts["label"],
        "stderr": "merge" if opts["merge_stderr"] else "pipe",
    }
    raise click.exceptions.Exit(asyncio.run(_run(target, [], **options)))


@click.command()
@click.argument("job", shell_complete=complete_job)
@pass_target
def follow(target: Target, job: str) -> None:
    """Follow JOB's output from its start, as `run` does, and exit with its exit code.

    Ctrl-C stops following (exit 130); the job goes on. The exit status is the same as
    `jobcast run`'s: the job's code, 128+N for signal N, 124 timed out, 255 lost.
    """

    import asyncio

    _without_httpx_cli()
    from .follow import follow_job

    async def main() -> int:
        async with target.async_client() as client:
            return await follow_job(client, await client.job(job), forward_interrupt=False)

    raise click.exceptions.Exit(asyncio.run(main()))


# -- one-shot commands --------------------------------------------------------------------------


@click.command()
@click.argument("job", shell_complete=complete_job)
@click.option("-f", "--follow", is_flag=True, help="Go on printing new output until JOB ends.")
@click.option(
    "--stream",
    type=click.Choice(["all", "stdout", "stderr"]),
    default="all",
    show_default=True,
    help="Which output.",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    metavar="BYTES",
    help="Start this far into the output.",
)
@pass_target
def logs(target: Target, job: str, follow: bool, stream: Any, offset: int) -> None:
    """Print JOB's output, byte for byte: stdout and stderr interleaved in the order the server
    read them (exact for a job run with --merge-stderr or --pty, see `jobcast run --help`)."""
    out = sys.stdout.buffer
    with target.client() as client:
        for chunk in client.follow_log(job, stream=stream, offset=offset, follow=follow):
            out.write(chunk)
            out.flush()


@click.command(name="ls")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@click.option(
    "-l", "--label", multiple=True, callback=_pairs, metavar="K=V", help="Only jobs with it."
)
@click.option("--name", help="Only jobs of this name.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Only processes run (job) or only files tailed (source, from `serve --watch`).",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    metavar="N",
    help="At most this many, the newest.",
)
@_json_option
@pass_target
def ls(
    target: Target,
    status: str | None,
    label: dict[str, str],
    name: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs, newest first: id, name, status, command, time, exit code, and why a job did
    not end the ordinary way (it could not start, was lost, cancelled or timed out).

    On a terminal, a table; in a pipe, one job a line, tab-separated, without a header.
    """
    params = [("label", f"{k}={v}") for k, v in label.items()]
    given = (("status", status), ("name", name), ("kind", kind))
    params += [(k, str(v)) for k, v in given if v is not None]
    params.append(("limit", str(limit)))
    with target.plain() as client:
        page = client.get("/jobs", params)
    if as_json:
        render.print_json(page)
    else:
        render.print_jobs(page["jobs"])


@click.command()
@click.argument("job", shell_complete=complete_job)
@_json_option
@pass_target
def show(target: Target, job: str, as_json: bool) -> None:
    """Show everything about JOB (by id or name)."""
    with target.plain() as client:
        found = client.get(job_path(job))
    if as_json:
        render.print_json(found)
    else:
        render.print_job(found)


@click.command()
@click.argument("job", shell_complete=complete_job)
@_json_option
@pass_target
def cancel(target: Target, job: str, as_json: bool) -> None:
    """Stop JOB: SIGTERM to its processes, SIGKILL if they are still there after the server's
    grace period (kill_grace_seconds). Returns once JOB has ended, and says how it did."""
    with target.plain() as client:
        before = client.get(job_path(job))
        if before["status"] in render.FINAL_STATUSES:
            after = before
        else:

            def waiting() -> None:
                click.echo(
                    f"jobcast: {render.who(before)} has not ended on SIGTERM yet; waiting for the "
                    "server's grace period (kill_grace_seconds), after which it sends SIGKILL",
                    err=True,
                )

            path = job_path(before["id"], "/cancel")
            after = client.request("POST", path, slow=(CANCEL_PATIENCE, waiting))
    if as_json:
        render.print_json(after)
    else:
        click.echo(render.cancel_outcome(before, after))


@click.command()
@click.argument("job", shell_complete=complete_job)
@click.argument("text")
@click.option("--eof", is_flag=True, help="Close JOB's stdin afterwards.")
@click.option("-n", "--no-newline", is_flag=True, help="Do not add a newline to TEXT.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for a queued or busy JOB to take the input.",
)
@pass_target
def send(target: Target, job: str, text: str, eof: bool, no_newline: bool, wait: float) -> None:
    """Write TEXT and a newline to JOB's stdin (or terminal); TEXT `-` sends this stdin as is.

    JOB must have been started with --stdin or --pty.
    """
    if text == "-":
        data = sys.stdin.buffer.read()
    else:
        data = (text if no_newline else text + "\n").encode()

    import asyncio

    _without_httpx_cli()
    from .stdin import send_when_ready

    async def main() -> None:
        async with target.async_client() as client:
            await send_when_ready(client, job, data, eof=eof, patience=wait)

    asyncio.run(main())


@click.command(name="signal")
@click.argument("job", shell_complete=complete_job)
@click.argument("sig", metavar="SIGNAL")
@pass_target
def signal_(target: Target, job: str, sig: str) -> None:
    """Send SIGNAL (INT, TERM, HUP, USR1, ... or a number) to JOB's processes."""
    name: str | int = int(sig) if sig.isdigit() else sig.strip().upper().removeprefix("SIG")
    with target.plain() as client:
        sent = client.post(job_path(job, "/signal"), {"signal": name})["signal"]
    click.echo(f"sent {sent} to job {job}")


@click.command()
@click.option("--output", is_flag=True, help="Include the jobs' output, a line per chunk.")
@pass_target
def watch(target: Target, output: bool) -> None:
    """Print what happens to every job, one line per event, until Ctrl-C.

    In a pipe, each line is time, job id, job name (empty if it has none), event type and what
    happened, tab-separated.
    """
    from ..errors import JobNotFound

    names: dict[str, str | None] = {}
    with target.client() as client:
        for ev in client.firehose(output=output):
            if ev.job not in names:  # events carry the id only: a job's name is looked up once
                try:
                    names[ev.job] = client.job(ev.job).name
                except JobNotFound:
                    names[ev.job] = None  # deleted meanwhile
            click.echo(render.event_line(ev, names[ev.job]))


@click.command()
@_json_option
@pass_target
def status(target: Target, as_json: bool) -> None:
    """Is the server up? Its version, uptime and jobs by status.

    On a terminal, durations and sizes in units; in a pipe or with --json, raw numbers.
    """
    with target.plain() as client:
        answer = client.get("/status")
    (render.print_json if as_json else render.print_mapping)(answer)


@click.command()
@_json_option
@pass_target
def stats(target: Target, as_json: bool) -> None:
    """Streaming figures: connected clients (in all and per job), events and bytes sent.

    On a terminal, sizes in units and totals with their average rate since the server started;
    in a pipe or with --json, raw numbers.
    """
    with target.plain() as client:
        answer = client.get("/stats")
        if as_json:
            render.print_json(answer)
            return
        uptime = client.get("/status").get("uptime") if render.is_tty() else None
    render.print_mapping(answer, uptime=uptime)


@click.command(name="stream")
@click.pass_context
def stream_(ctx: click.Context) -> None:
    """The firehose with the jobs' output: `watch --output` (nstar's client named it `stream`)."""
    ctx.invoke(watch, output=True)


COMMANDS = [run, follow, logs, ls, show, cancel, send, signal_, watch, stream_, status, stats]
