"""One line per job (queue, name, id, attempt, duration, outcome), as text or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER = "conveyor.worker"


class JsonFormatter(logging.Formatter):
    """Stable keys: ts, level, logger, message, then the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send conveyor's logs to stderr in the chosen format (idempotent)."""
    root = logging.getLogger("conveyor")
    for handler in list(root.handlers):
        if getattr(handler, "_conveyor", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._conveyor = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def log_job(logger: logging.Logger, *, queue: str, name: str, job_id: str, attempt: int,
            tries: int, duration: float, outcome: str, error: str = "", worker: str = "",
            wait: float | None = None, timed_out: bool = False) -> None:
    """One line per finished attempt. JSON keys are stable: event, queue, job, id, attempt,
    tries, duration_ms, wait_ms, outcome (done, released, failed, abandoned), timed_out,
    worker and, when there was one, error."""
    if not logger.isEnabledFor(logging.INFO):
        return
    level = logging.INFO if outcome in ("done", "released") and not timed_out else logging.WARNING
    label = f"timeout, {outcome}" if timed_out else outcome
    message = (f"{queue} {name} {job_id} attempt={attempt}/{tries} "
               f"{duration * 1000:.1f}ms {label}")
    if error:
        message += f" {error}"
    fields: dict[str, Any] = {
        "event": "job", "queue": queue, "job": name, "id": job_id, "attempt": attempt,
        "tries": tries, "duration_ms": round(duration * 1000, 3),
        "wait_ms": None if wait is None else round(wait * 1000, 3), "outcome": outcome,
        "timed_out": timed_out, "worker": worker,
    }
    if error:
        fields["error"] = error
    logger.log(level, message, extra={"fields": fields})
