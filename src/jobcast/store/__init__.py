"""Stores: the one place that picks a backend from the settings."""

from __future__ import annotations

from ..config import Settings
from .base import ProcessInfo, Store, StreamName

__all__ = ["ProcessInfo", "Store", "StreamName", "open_store"]


async def open_store(settings: Settings) -> Store:
    if settings.store == "sqlite":
        from .sqlite import SQLiteStore

        store: Store = SQLiteStore(
            settings.data_dir, fsync_interval=settings.fsync_interval_seconds
        )
    else:
        raise ValueError(
            f"store {settings.store!r} is not supported: use `sqlite` (redis:// comes with a later release)"
        )
    await store.open()
    return store
