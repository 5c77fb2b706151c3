"""create_app(settings): the aiohttp application; its lifespan builds store and runner and owns shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..config import Settings
from ..metrics import Metrics
from ..pastes import Pastes
from ..retention import Policy, prune_periodically
from ..runner.reaper import reap_periodically, set_subreaper
from ..runner.supervisor import Supervisor
from ..serverlog import configure as configure_logging
from ..serverlog import log_transitions
from ..store import Store, open_store
from ..tokenfile import read_token
from ..trace import Trace
from . import (
    asciicast,
    chat,
    compat,
    housekeeping,
    jobs,
    lines,
    log,
    mux,
    openapi,
    pastes,
    sse,
    status,
    templates,
    trace,
    ui,
    websocket,
    whoami,
)
from . import metrics as metrics_api
from .accesslog import access_middleware
from .auth import TOKENS, RedactTokens, Tokens, auth_middleware
from .cors import cors_headers, cors_middleware
from .guard import guard_middleware
from .http import error_middleware
from .ledger import Lifecycle
from .reload import reload_config, watch_config
from .state import STATE, State
from .webhooks import Webhooks

if TYPE_CHECKING:
    from ..sources.tailer import Sources

__all__ = ["CannotListen", "create_app", "run_server"]

logger = logging.getLogger("jobcast.api")
SETTINGS = web.AppKey("jobcast_settings", Settings)


def _bad_http_in_one_line(record: logging.LogRecord) -> bool:
    """A request that is not HTTP (garbage, TLS on the plain port) is the client's fault: one
    warning line, not a traceback that reads like a crash of the server."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError) and exc.code == 400:
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg, record.args = (
            "refused a malformed HTTP request from %s: %s",
            (remote, exc.message.split("\n", 1)[0].rstrip(": ")),
        )
        record.exc_info = record.exc_text = None
    return True


def create_app(settings: Settings) -> web.Application:
    # 4 MiB: above what execve takes for a command (ARG_MAX, 2 MiB) even JSON-escaped, so an
    # absurd body is a 413 before it is read, and a merely too long command a 422 naming it.
    tokens = Tokens.from_settings(settings)
    app = web.Application(
        # CORS before auth: a browser sends its preflight without credentials.
        middlewares=[
            access_middleware,  # outermost: it logs the status the client gets
            error_middleware,
            guard_middleware(settings, compat.body_types(settings)),
            cors_middleware(settings),
            auth_middleware(tokens, compat.rules(settings)),
        ],
        client_max_size=4 * 1024 * 1024,
    )
    app.on_response_prepare.append(cors_headers(settings))
    modules = (
        jobs,
        chat,
        sse,
        websocket,
        mux,
        log,
        asciicast,
        lines,
        status,
        metrics_api,
        housekeeping,
        pastes,
        trace,
        templates,
        openapi,
        whoami,
        ui,
        compat,
    )
    for module in modules:
        app.router.add_routes(module.routes)
    compat.install(app, settings)
    app[SETTINGS] = settings
    app[TOKENS] = tokens
    app.cleanup_ctx.append(_lifespan)
    app.cleanup_ctx.append(mux.lifespan)  # inside the state's life: it needs the store
    app.on_shutdown.append(_shutdown)
    return app


async def _lifespan(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Before any job starts: what its daemons leave behind is reparented here, to be found.
    set_subreaper()
    store = await open_store(settings)
    reaper = asyncio.create_task(reap_periodically(), name="jobcast-reaper")
    state_holder: dict[str, State] = {}

    def followers(job_id: str) -> int:
        return state_holder["s"].stats.per_job.get(job_id, 0)

    # Before the runner: what it counts (extraction matches, say) goes to `metrics` directly.
    metrics = Metrics()
    supervisor = Supervisor(
        store, settings, followers=followers, on_extraction=metrics.extraction_matched
    )
    ledger = Trace(
        settings.data_dir,
        max_bytes=settings.trace_max_bytes,
        keep_files=settings.trace_keep_files,
    )
    await ledger.open()
    # Trace entries wake firehose followers as job events do.
    ledger.on_written.append(store.wake_firehose)
    paste_dir = Pastes(settings.data_dir)
    await asyncio.to_thread(paste_dir.open)
    state = State(
        settings,
        store,
        supervisor,
        ledger,
        paste_dir,
        retention=Policy.from_settings(settings),
        policy=settings.controls(),
        metrics=metrics,
    )
    supervisor.set_max_running(state.policy.max_running_jobs or settings.max_running_jobs)
    state_holder["s"] = state
    app[STATE] = state
    metrics_api.install(app, state)
    state.stats.loop_lag.start()
    # From before recovery on: the jobs it ends `lost` or starts are in the ledger too (and in
    # the metrics and the log).
    recorder = Lifecycle(state, store.last_gid(), [state.metrics.observe, log_transitions])
    lifecycle = asyncio.create_task(recorder.run(), name="jobcast-trace-lifecycle")
    hooks: Webhooks | None = None
    notifier: asyncio.Task[None] | None = None
    if Webhooks.needed(state):
        # From the same point: jobs that recovery ends `lost` are told of too.
        hooks = Webhooks(state, store.last_gid())
        await hooks.start()
        notifier = asyncio.create_task(hooks.run(), name="jobcast-webhooks")
    await supervisor.start()
    sources: Sources | None = None
    if settings.watch or await _has_sources(store):
        from ..sources.tailer import Sources

        # After recovery, which leaves sources alone: they are resumed (or finished) here.
        sources = Sources(store, settings)
        await sources.start()
        supervisor.sources = sources
    background: list[asyncio.Task[Any]] = [
        asyncio.create_task(_sweep(state), name="jobcast-stall-sweeper")
    ]
    if settings.config is not None:
        background.append(asyncio.create_task(watch_config(state), name="jobcast-config-watch"))
        _on_sighup(state, background)
    if state.retention.active:
        # After recovery: jobs it ended `lost` are finished, and fall under the rules too.
        retention = prune_periodically(
            store, state.retention, settings.retention_interval_seconds, state.trace
        )
        background.append(asyncio.create_task(retention, name="jobcast-retention"))
    try:
        yield
    finally:
        if settings.config is not None:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(background):
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if not state.closing:
            await _shutdown(app)
        if sources is not None:
            await sources.stop()
        # The jobs have ended: their ends go into the ledger before the store closes.
        lifecycle.cancel()
        await asyncio.gather(lifecycle, return_exceptions=True)
        await recorder.flush()
        if hooks is not None and notifier is not None:
            # The ends of the jobs shutdown ended become deliveries, pending for the next start.
            notifier.cancel()
            await asyncio.gather(notifier, return_exceptions=True)
            await hooks.flush()
            await hooks.close()
        await state.stats.loop_lag.stop()
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
        await store.close()
        await ledger.close()


async def _has_sources(store: Store) -> bool:
    """Whether a previous server left sources running: without --watch now, they are finished."""
    return any(job.kind == "source" for job, _ in await store.unfinished_jobs())


def _on_sighup(state: State, tasks: list[asyncio.Task[Any]]) -> None:
    """SIGHUP reloads the config file (only with a config file: without one, SIGHUP still ends the
    server, as a hangup does)."""
    loop = asyncio.get_running_loop()

    def reload() -> None:
        task = loop.create_task(reload_config(state, "SIGHUP"), name="jobcast-reload")
        tasks.append(task)
        task.add_done_callback(tasks.remove)

    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (RuntimeError, ValueError):  # not the main thread (an app in a test's thread)
        logger.warning("cannot listen for SIGHUP here; the config file is still watched")


#: streaming clients gone since the last full garbage collection that start one at once
GC_AFTER_GONE = 1000
#: how long after the last of fewer of them it runs all the same (seconds)
GC_AFTER_SECONDS = 60.0


async def _sweep(state: State) -> None:
    """Every second: drop the stalled clients; collect what gone clients left behind."""
    collected_at, gone_then = time.monotonic(), 0
    while True:
        await asyncio.sleep(1.0)
        state.stats.sample()  # for /stats' rates
        if n := state.sweep_stalled():
            logger.warning(
                "disconnected %d client(s) that read nothing for %.0fs",
                n,
                state.settings.stall_timeout_seconds,
            )
        # A client that goes leaves reference cycles (aiohttp keeps the error of a WebSocket
        # dropped without a close frame, and through it the whole request); with the thresholds
        # set in run_server, the full collection that frees them could be hours away, and the
        # memory would grow with every connection made. So a full collection follows every
        # GC_AFTER_GONE that went, or GC_AFTER_SECONDS after fewer.
        gone = state.stats.gone - gone_then
        if gone >= GC_AFTER_GONE or (gone and time.monotonic() - collected_at >= GC_AFTER_SECONDS):
            gc.collect()
            collected_at, gone_then = time.monotonic(), state.stats.gone


async def _shutdown(app: web.Application) -> None:
    """Stop accepting is done by aiohttp; here: end the jobs, then tell every stream to finish."""
    state = app[STATE]
    if state.stopping:
        return
    state.stopping = True
    logger.info("shutting down: ending running jobs")
    await state.supervisor.shutdown("the server shut down while the job ran")
    state.closing = True
    # Followers at the tail wake, see `closing`, and end their streams cleanly.
    state.store.wake_all()


class CannotListen(Exception):
    """The address cannot be bound (in use, not ours, not resolvable); the message says which."""


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, on uvloop where it is installed.

    The socket is bound first, before the store is opened or recovery touches a job: a port in
    use then costs nothing (recovery would end the previous server's jobs `lost` and start the
    queued ones, only to cancel them again). "serving on" is printed once requests are served.

    Raises:
        CannotListen: the address cannot be bound; nothing else was done.
    """
    # Thousands of connections make thousands of long-lived objects; the default thresholds run
    # a full collection over all of them often enough to stall every stream for tens of ms.
    gc.set_threshold(50_000, 20, 100)
    configure_logging(settings.log_level, settings.log_format, RedactTokens())
    logging.getLogger("aiohttp.server").addFilter(_bad_http_in_one_line)
    sockets = _listen(settings.host, settings.port)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(settings, sockets))
    finally:
        for sock in sockets:
            sock.close()


async def _serve(settings: Settings, sockets: list[socket.socket]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        create_app(settings), access_log=None, shutdown_timeout=settings.kill_grace_seconds + 5
    )
    try:
        await runner.setup()  # the lifespan: store, recovery, supervisor
        if not stop.is_set():
            for sock in sockets:
                await web.SockSite(runner, sock).start()
            port = sockets[0].getsockname()[1]
            host = f"[{settings.host}]" if ":" in settings.host else settings.host
            print(f"jobcast serving on {_address(settings, host, port)}", flush=True)
            await stop.wait()
    finally:
        # Stops accepting, then `_shutdown` ends the jobs and the streams, then the lifespan's end.
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _address(settings: Settings, host: str, port: int) -> str:
    """The URL to open, with the admin token as Jupyter shows it, and where the data is."""
    if settings.auth == "none":
        return f"http://{host}:{port} (data in {settings.data_dir}; auth none: no token asked)"
    token = read_token(settings.data_dir)
    query = f"/?token={token}" if token is not None else ""
    return f"http://{host}:{port}{query} (data in {settings.data_dir})"


def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` names, as asyncio's create_server makes them."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise CannotListen(f"cannot listen on {where}: {str(e.strerror).lower()}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)  # aiohttp's default backlog
    except OSError as e:
        for sock in sockets:
            sock.close()
        why = "address in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e)).lower()
        raise CannotListen(f"cannot listen on {where}: {why}") from None
    return sockets
