"""Structured JSON log lines carrying the correlation and event id of the message in hand, and its trace."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

from service_runtime.tracing import current_ids

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
event_id: ContextVar[str | None] = ContextVar("event_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (cid := correlation_id.get()) is not None:
            line["correlation_id"] = cid
        if (eid := event_id.get()) is not None:
            line["event_id"] = eid
        if (ids := current_ids()) is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiormq and pymongo are chatty at INFO about every reconnect attempt.
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
