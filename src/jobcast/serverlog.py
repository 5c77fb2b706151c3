"""The server's own log: stderr, as text or one JSON object a line, with no secrets in it.

`configure` sets the root logger up once, at `jobcast serve`; `set_level` changes its level
when the config file is reloaded. Records may carry structured
fields in `extra={"fields": {...}}` (a request's method, path, status...): the text format has
them in its message already, the JSON format adds them as keys of their own. Every handler
passes records through `RedactTokens` first, whatever logger they come from.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

import orjson

from .models import Event, EventType

__all__ = ["LEVELS", "JsonFormatter", "configure", "log_transitions", "set_level"]

LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: what a LogRecord has of its own: everything else on it came in `extra`
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", ...fields}`; a traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return orjson.dumps(out, default=str).decode()


def configure(level: str, fmt: Literal["text", "json"], *filters: logging.Filter) -> None:
    """Send every logger's records at `level` and above to stderr in `fmt`, through `filters`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    for f in filters:
        # On the handler: it sees every record, from any logger, before it is written.
        handler.addFilter(f)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


_log = logging.getLogger("jobcast.log")


def set_level(level: str, why: str) -> bool:
    """Put the root logger at `level`; False if it is there already. A change is logged once, in
    a line the old level and the new both let through (at info unless both hold info back)."""
    root = logging.getLogger()
    old, new = root.level, logging.getLevelName(level.upper())
    if not isinstance(new, int):
        raise ValueError(f"no such log level: {level!r}")
    if new == old:
        return False
    louder = min(old, new)
    if new == louder:
        root.setLevel(new)
    fields = {"event": "log.level", "from": _name(old), "to": _name(new)}
    _log.log(
        max(logging.INFO, louder),
        "%s: log level %s -> %s",
        why,
        _name(old),
        _name(new),
        extra={"fields": fields},
    )
    root.setLevel(new)
    return True


def _name(level: int) -> str:
    return logging.getLevelName(level).lower()


_jobs = logging.getLogger("jobcast.jobs")


def log_transitions(events: list[Event]) -> None:
    """One line per job created, started and finished among lifecycle `events` (who created it
    is in the line of its request). Never its command, environment or input: ids, statuses."""
    if not _jobs.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any]
    for ev in events:
        if ev.type is EventType.STATUS:
            status = ev.data.get("status")
            if status == "queued":
                fields = {"event": "job.created", "job": ev.job}
                _jobs.info("job %s created", ev.job, extra={"fields": fields})
            elif status == "running":
                fields = {"event": "job.started", "job": ev.job}
                _jobs.info("job %s started", ev.job, extra={"fields": fields})
        elif ev.type is EventType.COMPLETE:
            d = ev.data
            fields = {"event": "job.finished", "job": ev.job}
            fields |= {k: d.get(k) for k in ("status", "exit_code", "signal", "duration")}
            _jobs.info(
                "job %s finished %s, exit code %s%s",
                ev.job,
                d.get("status"),
                d.get("exit_code"),
                f", signal {d['signal']}" if d.get("signal") else "",
                extra={"fields": fields},
            )
