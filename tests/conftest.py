"""Shared real fixtures: a clean environment, a data dir, free ports, a running server, a store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobcast.store import Store
from jobcast.store.redis import RedisStore
from jobcast.store.sqlite import SQLiteStore
from jobcast.tokenfile import read_token


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's JOBCAST_* settings (nor CBOS's aliases of some)."""
    for key in list(os.environ):
        if key.startswith(("JOBCAST_", "CBOS_STREAM_")):
            monkeypatch.delenv(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A real `jobcast serve` in a subprocess, on a free port, with its own data dir."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str | None:
        """The admin token the server made in its data dir (None with auth none)."""
        return read_token(self.data_dir)

    @property
    def headers(self) -> dict[str, str]:
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "jobcast", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra]
        self.log = (self.data_dir.parent / f"server-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/status", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.data_dir.parent / f"server-{self.port}.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Stop the server (if it still runs) and release its log; safe to call again."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def server_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[type[ServerProcess]]:
    """Start servers with custom flags; every one is stopped at the end of the test.

    Once one answers, JOBCAST_DATA_DIR names its data dir: the command line and the clients the
    test runs find its token there by themselves, as they do beside a local server.
    """
    started: list[ServerProcess] = []

    class Factory(ServerProcess):
        def start(self, timeout: float = 20.0) -> ServerProcess:
            started.append(self)
            super().start(timeout)
            monkeypatch.setenv("JOBCAST_DATA_DIR", str(self.data_dir))
            return self

    yield Factory
    for s in started:
        s.stop()


@pytest.fixture
def server(server_factory: type[ServerProcess], data_dir: Path) -> ServerProcess:
    return server_factory(data_dir, extra=["--heartbeat-seconds", "1"]).start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `redis-server` of the tests' own on a free port (never the machine's 6379), without
    persistence; its `redis://` URL. One for the session: each store in it has its own prefix."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--dir", str(workdir)]
    log = (workdir / "redis.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not _redis_answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not start: {(workdir / 'redis.log').read_text()}"
                )
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_store(url: str, **kwargs: Any) -> RedisStore:
    """A Redis store with a prefix of its own: an empty store on the shared server."""
    return RedisStore(url, prefix=f"test-{uuid.uuid4().hex[:12]}:", **kwargs)


#: every backend the store contract (tests/store/test_contract.py) runs on
STORE_BACKENDS = ["sqlite", "redis"]


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend in turn: the contract suite runs once per backend."""
    s: Store
    if request.param == "redis":
        s = redis_store(request.getfixturevalue("redis_server"), tick_seconds=0.2)
    else:
        s = SQLiteStore(tmp_path / "store", tick_seconds=0.2)
    await s.open()
    yield s
    await s.close()
    if isinstance(s, RedisStore):
        await s.drop()


@pytest.fixture(params=STORE_BACKENDS)
def any_store_server(
    request: pytest.FixtureRequest, server_factory: type[ServerProcess], data_dir: Path
) -> ServerProcess:
    """A server on each store backend in turn: the API tests that must hold on every backend."""
    extra = ["--heartbeat-seconds", "1"]
    if request.param == "redis":
        url = request.getfixturevalue("redis_server")
        _drop_keys(url, "jobcast:")  # what an earlier server on this Redis left
        extra += ["--store", url]
    return server_factory(data_dir, extra=extra).start()


@pytest.fixture
def any_store_api(any_store_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=any_store_server.url, headers=any_store_server.headers, timeout=30
    ) as c:
        yield c


def _drop_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as c:
        yield c


@pytest.fixture
async def aapi(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as c:
        yield c


def wait_job(api: httpx.Client, ref: str, timeout: float = 30.0) -> dict:
    """Poll until the job has finished; its JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{ref}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {ref} did not finish within {timeout}s")
