"""The server log's JSON lines: one object each, structured fields as keys, secrets redacted."""

from __future__ import annotations

import logging

import orjson
import pytest

from jobcast.api.auth import RedactTokens
from jobcast.serverlog import JsonFormatter, set_level


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


@pytest.mark.parametrize(
    ("old", "new", "logged_at"),
    [("info", "debug", "INFO"), ("info", "error", "INFO"), ("error", "warning", "WARNING")],
)
def test_a_level_change_is_logged_once_where_both_levels_show_it(
    old: str, new: str, logged_at: str
) -> None:
    root, seen = logging.getLogger(), Collect()
    before = root.level
    root.addHandler(seen)
    try:
        root.setLevel(old.upper())
        assert set_level(new, "SIGHUP") is True
        assert set_level(new, "SIGHUP") is False
        assert root.level == logging.getLevelName(new.upper())
    finally:
        root.removeHandler(seen)
        root.setLevel(before)
    assert [(r.levelname, r.getMessage()) for r in seen.records] == [
        (logged_at, f"SIGHUP: log level {old} -> {new}")
    ]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
