"""The exception tree and its wire form."""

from __future__ import annotations

from jobcast.errors import JobcastError, JobNotFound, NotFound, error_from_payload


def test_errors_round_trip_through_their_payload():
    err = JobNotFound.for_ref("x")
    back = error_from_payload(err.status, err.to_payload())
    assert type(back) is JobNotFound and back.message == err.message and back.status == 404
    assert isinstance(back, LookupError) and isinstance(back, JobcastError)


def test_unknown_codes_fall_back_on_the_status():
    assert type(error_from_payload(404, {"error": {"code": "weird", "message": "m"}})) is NotFound
    assert type(error_from_payload(502, "not json")) is JobcastError


def test_a_policy_denial_keeps_its_rule_and_a_429_its_retry_after():
    from jobcast.errors import PolicyDenied, TooManyRequests

    err = PolicyDenied("no", "deny[0]")
    back = error_from_payload(403, err.to_payload())
    assert type(back) is PolicyDenied and back.rule == "deny[0]"
    assert isinstance(back, PermissionError)
    busy = TooManyRequests("full", retry_after=7)
    assert busy.headers == {"Retry-After": "7"}
    assert type(error_from_payload(429, busy.to_payload())) is TooManyRequests
