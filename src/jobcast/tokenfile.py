"""The admin token file, `<data-dir>/token`: made by the first `jobcast serve`, read by the clients
on the same machine. Standard library only: the command line reads it on every call.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ADMIN_NAME", "TOKEN_FILE", "ensure_token", "read_token"]

TOKEN_FILE = "token"
#: the generated token's name: who the trace names, what 403s call it
ADMIN_NAME = "admin"


def read_token(data_dir: Path | str) -> str | None:
    """The token in `data_dir`, or None when there is none (or it cannot be read)."""
    try:
        text = (Path(data_dir) / TOKEN_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text.strip() or None


def ensure_token(data_dir: Path) -> str:
    """The data dir's admin token, made (0600) if it has none yet.

    Called by the server holding the data dir's lock: no other server writes it meanwhile. The
    file is written whole under another name, then renamed: a client never reads half a token.
    """
    token = read_token(data_dir)
    if token is not None:
        return token
    import secrets

    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    part = path.with_name(f".{TOKEN_FILE}.{os.getpid()}")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{token}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, path)
    return token
