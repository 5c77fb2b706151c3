"""The runner: spawns jobs' processes, pumps their output into the store, records how they end."""

from __future__ import annotations

from .backend import Backend, Process, SpawnError, SpawnRequest
from .supervisor import LocalBackend, Supervisor

__all__ = ["Backend", "LocalBackend", "Process", "SpawnError", "SpawnRequest", "Supervisor"]
