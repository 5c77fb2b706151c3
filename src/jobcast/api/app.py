"""create_app(settings): the aiohttp application; its lifespan builds store and runner and owns shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ..config import Settings
from ..runner.reaper import reap_periodically, set_subreaper
from ..runner.supervisor import Supervisor
from ..store import open_store
from . import jobs, log, openapi, sse, status, websocket
from .guard import guard_middleware
from .http import error_middleware
from .state import STATE, State

__all__ = ["create_app", "run_server"]

logger = logging.getLogger("jobcast.api")
SETTINGS = web.AppKey("jobcast_settings", Settings)


def create_app(settings: Settings) -> web.Application:
    # 4 MiB: above what execve takes for a command (ARG_MAX, 2 MiB) even JSON-escaped, so an
    # absurd body is a 413 before it is read, and a merely too long command a 422 naming it.
    app = web.Application(
        middlewares=[error_middleware, guard_middleware(settings)], client_max_size=4 * 1024 * 1024
    )
    for module in (jobs, sse, websocket, log, status, openapi):
        app.router.add_routes(module.routes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_lifespan)
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

    supervisor = Supervisor(store, settings, followers=followers)
    state = State(settings, store, supervisor)
    state_holder["s"] = state
    app[STATE] = state
    state.stats.loop_lag.start()
    await supervisor.start()
    sweeper = asyncio.create_task(_sweep(state), name="jobcast-stall-sweeper")
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        if not state.closing:
            await _shutdown(app)
        await state.stats.loop_lag.stop()
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
        await store.close()


async def _sweep(state: State) -> None:
    while True:
        await asyncio.sleep(1.0)
        if n := state.sweep_stalled():
            logger.warning(
                "disconnected %d client(s) that read nothing for %.0fs",
                n,
                state.settings.stall_timeout_seconds,
            )


async def _shutdown(app: web.Application) -> None:
    """Stop accepting is done by aiohttp; here: end the jobs, then tell every stream to finish."""
    state = app[STATE]
    if state.closing:
        return
    logger.info("shutting down: ending running jobs")
    await state.supervisor.shutdown("the server shut down while the job ran")
    state.closing = True
    # Followers at the tail wake, see `closing`, and end their streams cleanly.
    state.store.wake_all()


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, on uvloop where it is installed."""
    # Thousands of connections make thousands of long-lived objects; the default thresholds run
    # a full collection over all of them often enough to stall every stream for tens of ms.
    gc.set_threshold(50_000, 20, 100)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    url = f"http://{settings.host}:{settings.port}"
    print(f"jobcast serving on {url} (data in {settings.data_dir})", flush=True)
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=loop,
        print=None,
        shutdown_timeout=settings.kill_grace_seconds + 5,
        access_log=None,
    )
