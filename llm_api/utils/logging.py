"""Structured JSON logs on stdout, with a last-line filter that keeps prompts and keys out."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from llm_api.utils.context import request_context

# LogRecord attributes that are not user-supplied `extra` fields.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = request_context()
        if context is not None and "request_id" not in record.__dict__:
            entry["request_id"] = context.request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # Exception messages and tracebacks can quote request data: keep only the type.
            entry["exception_type"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode("utf-8")


def configure_logging(level: str) -> None:
    """Send every logger to stdout as JSON at `level` (idempotent; called in the app factory)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_llm_api", False):
            root.removeHandler(existing)
    handler._llm_api = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
