"""A TCP proxy that cuts every connection after a number of bytes from the server: dropped
connections on demand, mid-message, for the clients' resume tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit

__all__ = ["CuttingProxy"]


class CuttingProxy:
    """Forwards 127.0.0.1:<free port> to `upstream`, closing each connection once `cut_after`
    bytes of the server's answer went through (the rest is never sent).

    It runs its own event loop in a thread, so sync and async clients alike can go through it.
    """

    def __init__(self, upstream: str, cut_after: int) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.cut_after = cut_after
        self.cuts = 0
        self.connections = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="cutting-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start within 10s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_writer: asyncio.StreamWriter | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            tasks = [
                asyncio.create_task(self._pipe(reader, up_writer, None)),
                asyncio.create_task(self._pipe(up_reader, writer, self.cut_after)),
            ]
            # Whichever way ends first (a cut, or a side closing) ends the connection.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # No await in here: the proxy's shutdown may cancel this task at any point, and both
            # sockets must be closed all the same (warnings are errors in the tests).
            for task in tasks:
                task.cancel()
            writer.close()
            if up_writer is not None:
                up_writer.close()

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, budget: int | None
    ) -> None:
        with contextlib.suppress(ConnectionError):
            await self._copy(src, dst, budget)

    async def _copy(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, budget: int | None
    ) -> None:
        while data := await src.read(65536):
            if budget is not None and len(data) >= budget:
                dst.write(data[:budget])
                await dst.drain()
                self.cuts += 1
                return
            if budget is not None:
                budget -= len(data)
            dst.write(data)
            await dst.drain()
