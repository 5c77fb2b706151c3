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
        # A redis:// or rediss:// URL (the settings checked it)
        from .redis import RedisStore

        store = RedisStore(settings.store)
    await store.open()
    return store
