"""Shared real fixtures: a clean environment, a data dir, free ports, a running server, a store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from jobcast.store import Store
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


#: every backend the store contract (tests/store/test_contract.py) runs on; Redis joins later
STORE_BACKENDS = ["sqlite"]


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend in turn: the contract suite runs once per backend."""
    if request.param != "sqlite":  # pragma: no cover - the one backend so far
        raise AssertionError(f"no fixture for store backend {request.param!r}")
    s = SQLiteStore(tmp_path / "store", tick_seconds=0.2)
    await s.open()
    yield s
    await s.close()


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
