"""Test helpers: waits with a deadline (never a fixed sleep), SSE readers, a webhook receiver,
a TCP relay whose connections a test cuts (the server's sockets closing, the network down), and
the pixels of a browser's screenshot."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


async def async_wait_for(
    condition: Callable[[], Awaitable[T]], within: float = 10.0, interval: float = 0.02
) -> T:
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def collect_sse(
    client, url: str, headers: dict | None = None, limit: int | None = None
) -> list[dict]:
    """Read an SSE stream with an httpx.AsyncClient until it ends (or `limit` events)."""
    import orjson

    from jobcast.protocol import SSEParser

    parser = SSEParser()
    out: list[dict] = []
    async with client.stream("GET", url, headers=headers or {}) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for chunk in resp.aiter_raw():
            for msg in parser.feed(chunk):
                out.append(orjson.loads(msg.data))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def output_of(events: list[dict], stream: str = "stdout") -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == stream)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def stalled_sse_request(
    port: int, path: str, headers: str = "", token: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open an SSE request on a socket with a small receive buffer; read it later, or never."""
    if token is not None:
        headers += f"Authorization: Bearer {token}\r\n"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"{headers}Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


class Receiver:
    """A real webhook receiver: an aiohttp server on loopback that records every POST and
    answers with the statuses it is given, in turn (200 once they run out). With `hold`, each
    request waits until `release()`. `port` may be chosen before it starts, to start it late."""

    def __init__(
        self,
        port: int,
        statuses: list[int] | None = None,
        hold: bool = False,
        retry_after: str | None = None,
    ) -> None:
        self.port = port
        self.statuses = list(statuses or [])
        self.retry_after = retry_after  # sent with each 429 and 503
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answered = 0
        self._held = asyncio.Event()
        if not hold:
            self._held.set()
        self._runner = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> Receiver:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            self.requests.append((dict(request.headers), await request.read()))
            await self._held.wait()
            self.answered += 1
            status = self.statuses.pop(0) if self.statuses else 200
            if 300 <= status < 400:
                return web.Response(status=status, headers={"Location": self.url("/moved")})
            if status in (429, 503) and self.retry_after is not None:
                return web.Response(status=status, headers={"Retry-After": self.retry_after})
            return web.Response(status=status)

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    def release(self) -> None:
        self._held.set()

    async def stop(self) -> None:
        if self._runner is not None:
            self.release()
            await self._runner.cleanup()
            self._runner = None


class Proxy:
    """A TCP relay in front of the server, whose connections can be cut (the network failing),
    which can turn new ones away meanwhile (the network still down), and whose target can change
    (another server at the same address)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        #: while set, connections are closed as soon as they come, and counted in `turned_away`
        self.down = threading.Event()
        self.turned_away = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set() or self.closed:
                self.turned_away += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                # A drop or close since the accept: its cut did not see this pair, so it must
                # not live on (open through a drop, or unclosed for good after close).
                gone = self.closed or self.down.is_set()
                if not gone:
                    self.open |= {client, upstream}
            if gone:
                self.turned_away += 1
                client.close()
                upstream.close()
                continue
            ended = [False]  # shared by the pair's two directions
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, ended), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, ended: list[bool]) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self.lock:  # the second direction to end closes the pair
            last, ended[0] = ended[0], True
            if last:
                self.open -= {src, dst}
        if last:
            src.close()
            dst.close()

    def cut(self) -> None:
        with self.lock:
            cut, self.open = self.open, set()
        for s in cut:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def drop(self) -> None:
        """Cut every connection and turn new ones away until `restore`: the network down."""
        self.down.set()
        self.cut()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        with self.lock:
            self.closed = True
        # shutdown wakes the thread blocked in accept(); close alone would not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.cut()


def read_sse(
    url: str,
    headers: dict[str, str] | None = None,
    stop: Callable[[list], bool] | None = None,
    timeout: float = 30.0,
) -> list:
    """Read an SSE stream (sync httpx) until it ends or `stop(messages)` says so; its messages
    (jobcast.protocol.SSEMessage: event, data, id), comments left out."""
    import httpx

    from jobcast.protocol import SSEParser

    parser = SSEParser()
    out: list = []
    with httpx.stream("GET", url, headers=headers or {}, timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        for chunk in resp.iter_raw():
            out += parser.feed(chunk)
            if stop is not None and stop(out):
                return out
    return out


def png_pixels(data: bytes) -> list[list[tuple[int, int, int]]]:
    """The RGB rows of an 8-bit, non-interlaced RGB or RGBA PNG: what Chromium's screenshots
    are (alpha dropped), so a test can tell which colour the page drew, not which it asked for."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = depth = colour = interlace = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):  # undo the row's filter (PNG spec, 9.2)
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append([(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, bpp)])
        prev = line
    return rows


def contrast(one: tuple[int, int, int], two: tuple[int, int, int]) -> float:
    """WCAG's contrast ratio of two sRGB colours (1 to 21; 3 is its least for a control's parts)."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        lin = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(one), luminance(two)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` in a thread of its own: for sync tests where a loop already runs in
    this one (Playwright's sync API keeps one for the browser's package scope)."""
    result: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as e:  # handed to the test's own thread
            error.append(e)

    thread = threading.Thread(target=main, name="run_async")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
