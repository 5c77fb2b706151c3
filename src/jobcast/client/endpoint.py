"""Where the server is and how to reach it: the URL and token from arguments, the environment or
the defaults, and what to say when it cannot be reached. Standard library only, so the light
client (`plain`) and the full ones (`sync`, `asyncio`) share it without importing each other.
"""

from __future__ import annotations

import os
from urllib.parse import quote

__all__ = [
    "DEFAULT_URL",
    "cannot_reach",
    "job_path",
    "lost_connection",
    "no_answer",
    "quote_ref",
    "resolve_token",
    "resolve_url",
]

DEFAULT_URL = "http://127.0.0.1:8080"


def resolve_url(url: str | None) -> str:
    """The argument, else `JOBCAST_URL`, else the default; `http://` added when no scheme is."""
    url = url or os.environ.get("JOBCAST_URL") or DEFAULT_URL
    if "://" not in url:
        # `--url 127.0.0.1:8080` is what people type; httpx would take the host for a scheme.
        url = "http://" + url
    return url.rstrip("/")


def resolve_token(token: str | None) -> str | None:
    """The argument, else `JOBCAST_TOKEN`; None when neither is set (or it is empty)."""
    if token is None:
        token = os.environ.get("JOBCAST_TOKEN") or None
    return token


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
