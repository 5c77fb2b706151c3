"""The one exception tree of jobcast; each error carries a stable `code` and an HTTP `status`.

    JobcastError
     ├── BadRequest (ValueError)             400 bad_request
     │    ├── InvalidJSON                    400 invalid_json
     │    └── ValidationFailed               422 validation_failed
     ├── Unauthorized                        401 unauthorized
     ├── Forbidden (PermissionError)         403 forbidden
     │    ├── PolicyDenied                   403 policy_denied (+ `rule`)
     │    └── MissingScope                   403 missing_scope
     ├── NotFound (LookupError)              404 not_found
     │    ├── JobNotFound                    404 job_not_found
     │    └── PasteNotFound                  404 paste_not_found
     ├── Conflict                            409 conflict
     │    ├── JobFinished                    409 job_finished
     │    ├── JobNotFinished                 409 job_not_finished
     │    ├── NameTaken                      409 name_taken
     │    ├── NoStdin                        409 no_stdin
     │    └── SourceReadOnly                 409 source_read_only
     ├── PayloadTooLarge                     413 too_large
     ├── UnsupportedMediaType                415 unsupported_media_type
     ├── RangeNotSatisfiable                 416 range_not_satisfiable
     ├── TooManyRequests                     429 too_many_requests (+ Retry-After)
     ├── ServerShuttingDown                  503 shutting_down
     └── ConnectionFailed (ConnectionError)  ---  (client side: the server could not be reached)

The server maps any of these to `{"error": {"code", "message"}}` with `status`; the clients map such a
response back to the same class, so callers catch `JobNotFound` on both sides of the wire.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "InvalidJSON",
    "JobFinished",
    "JobNotFinished",
    "JobNotFound",
    "JobcastError",
    "MissingScope",
    "NameTaken",
    "NoStdin",
    "NotFound",
    "PasteNotFound",
    "PayloadTooLarge",
    "PolicyDenied",
    "RangeNotSatisfiable",
    "ServerShuttingDown",
    "SourceReadOnly",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "error_from_payload",
]


class JobcastError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_payload(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(JobcastError, ValueError):
    code = "bad_request"
    status = 400


class InvalidJSON(BadRequest):
    code = "invalid_json"


class ValidationFailed(BadRequest):
    code = "validation_failed"
    status = 422


class Unauthorized(JobcastError):
    """No token, or one the server does not know."""

    code = "unauthorized"
    status = 401

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        # RFC 6750: what to send, and (when one was sent) that it was not good.
        challenge = 'Bearer realm="jobcast"' + (', error="invalid_token"' if invalid else "")
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(JobcastError, PermissionError):
    code = "forbidden"
    status = 403


class PolicyDenied(Forbidden):
    """The policy (`[policy]` in the config) refuses the request; `rule` names the rule."""

    code = "policy_denied"

    def __init__(self, message: str, rule: str = "policy") -> None:
        super().__init__(message)
        self.rule = rule

    def to_payload(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message, "rule": self.rule}}


class MissingScope(Forbidden):
    """The token is good, but may not do this: the message names the scope it lacks."""

    code = "missing_scope"


class NotFound(JobcastError, LookupError):
    code = "not_found"
    status = 404


class JobNotFound(NotFound):
    code = "job_not_found"

    @classmethod
    def for_ref(cls, ref: str) -> JobNotFound:
        return cls(f"no job with id or name {ref!r}; `jobcast ls` lists the jobs there are")


class PasteNotFound(NotFound):
    code = "paste_not_found"


class Conflict(JobcastError):
    code = "conflict"
    status = 409


class JobFinished(Conflict):
    code = "job_finished"


class JobNotFinished(Conflict):
    code = "job_not_finished"


class NameTaken(Conflict):
    code = "name_taken"


class NoStdin(Conflict):
    code = "no_stdin"


class SourceReadOnly(Conflict):
    """A source (a file tailed) has no process: no signal, cancel, resize, nor input unless the
    config names its tmux or screen session."""

    code = "source_read_only"


class RangeNotSatisfiable(JobcastError):
    code = "range_not_satisfiable"
    status = 416


class TooManyRequests(JobcastError):
    """A limit that frees up by itself (a full queue): try again after `retry_after` seconds."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class PayloadTooLarge(JobcastError):
    code = "too_large"
    status = 413


class UnsupportedMediaType(JobcastError):
    code = "unsupported_media_type"
    status = 415


class ServerShuttingDown(JobcastError):
    code = "shutting_down"
    status = 503


class ConnectionFailed(JobcastError, ConnectionError):
    code = "connection_failed"
    status = 0


def _descendants(cls: type[JobcastError]) -> list[type[JobcastError]]:
    return [d for sub in cls.__subclasses__() for d in (sub, *_descendants(sub))]


_BY_CODE: dict[str, type[JobcastError]] = {cls.code: cls for cls in _descendants(JobcastError)}


def error_from_payload(status: int, payload: object) -> JobcastError:
    """Rebuild the error a server sent; unknown codes fall back on the status's class."""
    code, message = "error", f"server answered HTTP {status}"
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        code = str(payload["error"].get("code", code))
        message = str(payload["error"].get("message", message))
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = {
            400: BadRequest,
            401: Unauthorized,
            403: Forbidden,
            404: NotFound,
            409: Conflict,
            429: TooManyRequests,
        }.get(status, JobcastError)
    err = cls(message)
    err.status = status
    if isinstance(err, PolicyDenied) and isinstance(payload, dict):
        err.rule = str(payload["error"].get("rule", err.rule))
    return err
