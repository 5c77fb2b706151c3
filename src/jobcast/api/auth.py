"""Who is asking, and whether they may: tokens, scopes and label limits, once per request.

Every route has a rule in `RULES` (the scope it needs, whether the token may come in the URL);
`auth_middleware` runs after the Host/Origin guard, finds the token (`Authorization: Bearer`, or
`?access_token=` where a browser cannot set headers), and puts who it belongs to in
`request[IDENTITY]`, or answers 401 or 403. A WebSocket opened without a token is let through
as `ANONYMOUS`: its handler takes the token from the first message (`authenticate_socket`).

Tokens are kept as sha256 digests only and compared in constant time, each against all.
A token limited to labels sees and drives only jobs with them: `visible_job` answers 404 for
the others as if they did not exist, and `job_filter` drops their events from the firehose.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import orjson
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Middleware

from ..config import Scope, Settings
from ..errors import Forbidden, JobNotFound, MissingScope, Unauthorized
from ..models import Event, Job
from ..tokenfile import ADMIN_NAME, read_token
from .http import Handler
from .state import STATE, State

__all__ = [
    "ANONYMOUS",
    "IDENTITY",
    "LOCAL",
    "RULES",
    "TOKENS",
    "WS_AUTH_TIMEOUT",
    "Identity",
    "RedactTokens",
    "Rule",
    "Tokens",
    "auth_middleware",
    "authenticate_socket",
    "job_filter",
    "require",
    "rule_for",
    "visible_job",
]

#: what each scope grants besides itself
_IMPLIES = {
    Scope.ADMIN: frozenset(Scope),
    Scope.EXEC: frozenset({Scope.EXEC, Scope.RUN}),
    Scope.READ: frozenset({Scope.READ, Scope.METRICS}),
}

#: seconds a WebSocket opened without a token has to send `{"type": "auth", "token": ...}`
WS_AUTH_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request comes from: the token's name, what it may do, and the labels of the only
    jobs it may see (empty: every job)."""

    name: str
    scopes: frozenset[Scope]
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, name: str, scopes: list[Scope], labels: Mapping[str, str]) -> Identity:
        granted = frozenset(s for scope in scopes for s in _IMPLIES.get(scope, {scope}))
        return cls(name, granted, MappingProxyType(dict(labels)))

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def sees(self, labels: Mapping[str, str]) -> bool:
        """Whether a job with these labels is one this identity may see and drive."""
        return all(labels.get(k) == v for k, v in self.labels.items())


#: auth = "none": everyone is the operator on this machine (the trace's `who`)
LOCAL = Identity.of("local", [Scope.ADMIN], {})
#: no token (yet): on the open routes, and on a WebSocket until its first message
ANONYMOUS = Identity("anonymous", frozenset())

IDENTITY = web.RequestKey("jobcast_identity", Identity)


class Tokens:
    """The tokens this server accepts: the config's and the data dir's admin token."""

    def __init__(self, entries: list[tuple[bytes, Identity]], *, enabled: bool = True) -> None:
        self._entries = entries
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        if settings.auth == "none":
            return cls([], enabled=False)
        entries = [(t.digest(), Identity.of(t.name, t.scopes, t.labels)) for t in settings.tokens]
        admin = read_token(settings.data_dir)
        if admin is not None:
            entries.append((_digest(admin), Identity.of(ADMIN_NAME, [Scope.ADMIN], {})))
        return cls(entries)

    def identify(self, token: str) -> Identity | None:
        """Whose token this is; None if nobody's. Compared with every token, in constant time."""
        digest = _digest(token)
        found = None
        for known, identity in self._entries:
            if hmac.compare_digest(known, digest):
                found = identity
        return found


TOKENS = web.AppKey("jobcast_tokens", Tokens)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Rule:
    #: what the route needs; None: open to all (it tells nothing secret)
    scope: Scope | None
    #: the token may come as `?access_token=`: GETs a browser makes without headers of its own
    #: (EventSource, WebSocket, a download link)
    in_query: bool = False
    #: a WebSocket, which may also take the token in its first message
    socket: bool = False
    #: refused to a token limited to labels: it would act on other jobs too
    every_job: bool = False


#: every route's rule, by (method, path); HEAD has GET's. tests/api/test_auth.py holds this
#: against the router: a new route without a rule fails it (and meanwhile needs `admin`).
RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/jobs"): Rule(Scope.RUN),  # and `exec` for a raw command (create_job)
    ("GET", "/jobs"): Rule(Scope.READ),
    ("GET", "/jobs/{ref}"): Rule(Scope.READ),
    ("DELETE", "/jobs/{ref}"): Rule(Scope.ADMIN),
    ("POST", "/jobs/{ref}/cancel"): Rule(Scope.CONTROL),
    ("POST", "/jobs/{ref}/input"): Rule(Scope.CONTROL),
    ("POST", "/jobs/{ref}/signal"): Rule(Scope.CONTROL),
    ("POST", "/jobs/{ref}/resize"): Rule(Scope.CONTROL),
    ("POST", "/jobs/{ref}/interrupt"): Rule(Scope.CONTROL),
    ("GET", "/jobs/{ref}/log"): Rule(Scope.READ, in_query=True),
    ("GET", "/jobs/{ref}/events"): Rule(Scope.READ, in_query=True),
    ("GET", "/jobs/{ref}/lines"): Rule(Scope.READ, in_query=True),
    ("GET", "/jobs/{ref}/ws"): Rule(Scope.READ, in_query=True, socket=True),
    ("GET", "/jobs/{ref}/asciicast"): Rule(Scope.READ, in_query=True),
    ("GET", "/stream"): Rule(Scope.READ, in_query=True),
    # Watching needs `read`; each message that drives a job is checked for `control` itself.
    ("GET", "/ws"): Rule(Scope.READ, in_query=True, socket=True),
    ("POST", "/prune"): Rule(Scope.ADMIN, every_job=True),
    ("GET", "/stats"): Rule(Scope.READ),
    # Prometheus scrapes with a token of its own: `metrics` (or `read`) may.
    ("GET", "/metrics"): Rule(Scope.METRICS),
    # A paste is context for the jobs one starts; reading one back is reading.
    ("POST", "/pastes"): Rule(Scope.RUN),
    ("GET", "/pastes/{hash}"): Rule(Scope.READ),
    ("GET", "/templates"): Rule(Scope.READ),
    # They start templates (`policy.check` holds them to `run`, as POST /jobs with a template).
    ("POST", "/chat"): Rule(Scope.RUN),
    ("POST", "/direct"): Rule(Scope.RUN),
    # Who did what to every job.
    ("GET", "/trace"): Rule(Scope.ADMIN, every_job=True),
    ("GET", "/status"): Rule(None),
    # They describe the API, nothing of this server's jobs: /docs must load without a token.
    ("GET", "/openapi.json"): Rule(None),
    ("GET", "/docs"): Rule(None),
    # The web UI's files: the page asks for a token itself, and they hold no data.
    ("GET", "/"): Rule(None),
    ("GET", "/assets/{name}"): Rule(None),
    ("GET", "/whoami"): Rule(Scope.READ),
    # Which drop-in profiles there are and where: nothing of this server's jobs.
    ("GET", "/compat"): Rule(None),
}
_UNKNOWN = Rule(Scope.ADMIN)  # fail closed


def rule_for(method: str, path: str, rules: Mapping[tuple[str, str], Rule] = RULES) -> Rule:
    """The rule of a route; `rules` may add the routes of the drop-in profiles to RULES."""
    return rules.get(("GET" if method == "HEAD" else method, path), _UNKNOWN)


_NEEDS_TOKEN = (
    "this endpoint needs a token: send `Authorization: Bearer TOKEN` "
    "(the server's admin token is in the `token` file of its data dir)"
)
_INVALID = "the token is not valid"


def auth_middleware(tokens: Tokens, rules: Mapping[tuple[str, str], Rule] = RULES) -> Middleware:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not tokens.enabled:
            request[IDENTITY] = LOCAL
            return await handler(request)
        match = request.match_info
        resource = match.route.resource
        if match.http_exception is not None or resource is None:
            # No such route (404, 405): nothing behind it to protect, and routes are no secret.
            request[IDENTITY] = ANONYMOUS
            return await handler(request)
        path = resource.canonical
        rule = rule_for(request.method, path, rules)
        if rule.scope is None:
            request[IDENTITY] = ANONYMOUS  # whatever it sent: an open route reads no token
            return await handler(request)
        presented: str | None = None
        identity: Identity | None = None
        try:
            presented = _presented(request, rule)
            identity = tokens.identify(presented) if presented is not None else None
            if identity is None:
                if presented is None and rule.socket and _is_upgrade(request):
                    request[IDENTITY] = ANONYMOUS  # the socket's first message brings it
                    return await handler(request)
                raise Unauthorized(
                    _NEEDS_TOKEN if presented is None else _INVALID, invalid=presented is not None
                )
            _check(identity, rule, f"{request.method} {path}")
        except (Unauthorized, Forbidden) as e:
            who = identity.name if identity is not None else "anonymous"
            await _trace_failure(request, who, e)
            raise
        request[IDENTITY] = identity
        return await handler(request)

    return auth


async def _trace_failure(request: web.Request, who: str, error: Unauthorized | Forbidden) -> None:
    """`auth.fail` in the ledger: the route asked for, never the token (nor the query string)."""
    state = request.app.get(STATE)
    if state is not None:
        detail = {"method": request.method, "path": request.path[:200], "error": error.message}
        await state.trace.record("auth.fail", who=who, job=None, outcome=error.code, detail=detail)


def _presented(request: web.Request, rule: Rule) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("`Authorization` must be `Bearer TOKEN`", invalid=True)
        return value.strip()
    query = request.query.get("access_token")
    if query is None:
        return None
    if not rule.in_query:
        raise Unauthorized(
            "`access_token` in the URL is taken only by streams (/log, /events, /ws, /stream); "
            "send `Authorization: Bearer TOKEN` here",
            invalid=True,
        )
    return query


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _check(identity: Identity, rule: Rule, what: str) -> None:
    assert rule.scope is not None
    if not identity.allows(rule.scope):
        raise MissingScope(
            f"token {identity.name!r} lacks the `{rule.scope}` scope, which {what} needs"
        )
    if rule.every_job and identity.labels:
        raise Forbidden(
            f"token {identity.name!r} sees only jobs labelled {_labels(identity)}, "
            f"and {what} acts on every job"
        )


def require(request: web.Request, scope: Scope, what: str) -> None:
    """A scope a handler needs beyond its route's (`exec` to start a raw command)."""
    identity = request[IDENTITY]
    if not identity.allows(scope):
        raise MissingScope(f"token {identity.name!r} lacks the `{scope}` scope, which {what} needs")


def _labels(identity: Identity) -> str:
    return ", ".join(f"{k}={v}" for k, v in identity.labels.items())


async def visible_job(request: web.Request, identity: Identity | None = None) -> Job:
    """The job `{ref}` names, if the identity (the request's) may see it; else 404, as if it
    did not exist."""
    ref = request.match_info["ref"]
    job = await request.app[STATE].store.get_job(ref)
    if not (identity or request[IDENTITY]).sees(job.labels):
        raise JobNotFound.for_ref(ref)
    return job


Filter = Callable[[list[Event]], Awaitable[list[Event]]]


def job_filter(state: State, identity: Identity) -> Filter | None:
    """For the firehose: a filter that keeps the events of jobs `identity` may see (None: all)."""
    if not identity.labels:
        return None
    seen: dict[str, bool] = {}

    async def visible(events: list[Event]) -> list[Event]:
        for job_id in {e.job for e in events}.difference(seen):
            if len(seen) >= 10_000:
                seen.clear()  # a job's labels never change: forgetting costs a lookup, no more
            try:
                seen[job_id] = identity.sees((await state.store.get_job(job_id)).labels)
            except JobNotFound:
                seen[job_id] = False  # deleted meanwhile
        return [e for e in events if seen.get(e.job, False)]

    return visible


async def authenticate_socket(
    ws: web.WebSocketResponse,
    tokens: Tokens,
    scope: Scope,
    request: web.Request | None = None,
) -> Identity | None:
    """The identity the socket's first message, `{"type": "auth", "token": ...}`, names; None
    once the socket is closed (4401 without a good token within WS_AUTH_TIMEOUT, 4403 when the
    token lacks `scope`). Nothing else is read or sent before. With `request`, a refusal is an
    `auth.fail` in the ledger, as it is over HTTP."""

    async def refuse(code: int, error: Unauthorized | Forbidden, who: str = "anonymous") -> None:
        await ws.close(code=code, message=error.message.encode())
        if request is not None:
            await _trace_failure(request, who, error)

    try:
        # Not receive(timeout=): that wait starts over at every pong of the heartbeat.
        async with asyncio.timeout(WS_AUTH_TIMEOUT):
            msg = await ws.receive()
    except TimeoutError:
        await refuse(4401, Unauthorized('no {"type": "auth", "token": ...} message within 5 s'))
        return None
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    token = None
    if msg.type is WSMsgType.TEXT:
        try:
            obj = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and obj.get("type") == "auth":
            token = obj.get("token")
    if not isinstance(token, str):
        await refuse(4401, Unauthorized('the first message must be {"type": "auth", "token": ...}'))
        return None
    identity = tokens.identify(token)
    if identity is None:
        await refuse(4401, Unauthorized(_INVALID, invalid=True))
        return None
    if not identity.allows(scope):
        await refuse(4403, Forbidden(f"the token lacks the `{scope}` scope"), identity.name)
        return None
    return identity


# `access_token=...`, `token=...` in a URL; `Bearer ...` in a header someone logged
_SECRETS = re.compile(r"((?:access_token|token)=|Bearer\s+)[^\s&\"'#;,]+", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Every log line loses what looks like a token, wherever it came from (a URL quoted in an
    error, a request line), before a handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _redact(logging.Formatter().formatException(record.exc_info))
        return True


def _redact(text: str) -> str:
    return _SECRETS.sub(r"\1[redacted]", text)
