"""Where the server is and how to reach it: the URL and token from arguments, the environment or
the defaults, and what to say when it cannot be reached. Standard library only, so the light
client (`plain`) and the full ones (`sync`, `asyncio`) share it without importing each other.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

from ..tokenfile import TOKEN_FILE, read_token

__all__ = [
    "DEFAULT_URL",
    "cannot_reach",
    "job_path",
    "local_data_dir",
    "lost_connection",
    "no_answer",
    "quote_ref",
    "resolve_token",
    "resolve_url",
    "token_hint",
]

DEFAULT_URL = "http://127.0.0.1:8080"


def resolve_url(url: str | None) -> str:
    """The argument, else `JOBCAST_URL`, else the default; `http://` added when no scheme is."""
    url = url or os.environ.get("JOBCAST_URL") or DEFAULT_URL
    if "://" not in url:
        # `--url 127.0.0.1:8080` is what people type; httpx would take the host for a scheme.
        url = "http://" + url
    return url.rstrip("/")


def resolve_token(token: str | None, url: str = DEFAULT_URL) -> str | None:
    """The argument, else `JOBCAST_TOKEN`, else, for a server on this machine, the admin token
    its first start wrote into the data dir (`local_data_dir()`); None when there is none.

    The token file is read only for a loopback `url`: that token must never go to another host.
    """
    if token:
        return token
    if token := os.environ.get("JOBCAST_TOKEN", ""):
        return token
    if _is_loopback(url):
        return read_token(local_data_dir())
    return None


def local_data_dir() -> str:
    """Where a server on this machine keeps its data, as `jobcast serve` would be told: the
    same `JOBCAST_DATA_DIR`, else its default, `.jobcast` in the current directory."""
    return os.environ.get("JOBCAST_DATA_DIR") or ".jobcast"


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").rstrip(".")
    return host == "localhost" or host == "::1" or host.startswith("127.")


def token_hint(url: str) -> str:
    """What to do about a 401: where the clients look for a token, in order."""
    local = os.path.join(local_data_dir(), TOKEN_FILE)
    where = f"then {local} (the server's data dir: JOBCAST_DATA_DIR, else ./.jobcast)"
    if not _is_loopback(url):
        where = f"({local} only for a server on 127.0.0.1 or localhost)"
    return f"a token is taken from --token, then JOBCAST_TOKEN, {where}"


def quote_ref(ref: str) -> str:
    """A job id or name as one path segment: a user's string must never reach another route."""
    return quote(ref, safe="")


def job_path(ref: str, suffix: str = "") -> str:
    """The path of a job's resource: `/jobs/{ref}{suffix}`, the reference quoted."""
    return f"/jobs/{quote_ref(ref)}{suffix}"


def cannot_reach(url: str) -> str:
    return (
        f"cannot reach the jobcast server at {url}: start it with `jobcast serve` "
        "or set JOBCAST_URL"
    )


def no_answer(url: str) -> str:
    return f"the jobcast server at {url} did not answer in time"


def lost_connection(url: str, detail: str) -> str:
    return f"lost the connection to the jobcast server at {url}: {detail}"
