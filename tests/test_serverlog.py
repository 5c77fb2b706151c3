"""The server log's JSON lines: one object each, structured fields as keys, secrets redacted."""

from __future__ import annotations

import logging

import orjson

from jobcast.api.auth import RedactTokens
from jobcast.serverlog import JsonFormatter


def _format(record: logging.LogRecord) -> dict:
    RedactTokens().filter(record)
    return orjson.loads(JsonFormatter().format(record))


def test_a_record_is_one_json_object_with_its_fields() -> None:
    record = logging.LogRecord("jobcast.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.fields = {"method": "GET", "path": "/x", "status": 200, "message": "not this one"}
    out = _format(record)
    assert out["message"] == "GET /x" and out["level"] == "info"
    assert out["logger"] == "jobcast.access" and out["ts"].endswith("Z")
    assert (out["method"], out["path"], out["status"]) == ("GET", "/x", 200)


def test_a_token_in_a_message_or_a_traceback_is_redacted() -> None:
    try:
        raise ValueError("fetching /jobs?access_token=s3cret-abc failed")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "jobcast.api", logging.ERROR, __file__, 1, "GET %s", ("/?token=s3cret-abc",), exc_info
    )
    out = _format(record)
    assert "s3cret-abc" not in orjson.dumps(out).decode()
    assert out["message"] == "GET /?token=[redacted]" and "ValueError" in out["exc"]
