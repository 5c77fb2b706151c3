"""Runner fixtures: real Supervisors over the real store (the shared `store` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jobcast.config import Settings
from jobcast.runner import Supervisor

MakeSupervisor = Callable[..., Awaitable[Supervisor]]


@pytest.fixture
async def make_supervisor(store: Any, tmp_path: Path) -> AsyncIterator[MakeSupervisor]:
    """Build started Supervisors with given settings; each is shut down at the end of the test."""
    made: list[Supervisor] = []

    async def make(**settings: Any) -> Supervisor:
        settings.setdefault("kill_grace_seconds", 2.0)
        followers = settings.pop("followers", None)
        sup = Supervisor(store, Settings(data_dir=tmp_path, **settings), followers)
        made.append(sup)
        await sup.start()
        return sup

    yield make
    for sup in made:
        await sup.shutdown()


@pytest.fixture
async def supervisor(make_supervisor: MakeSupervisor) -> Supervisor:
    return await make_supervisor()
