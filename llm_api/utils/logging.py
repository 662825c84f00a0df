"""Structured JSON logs on stdout, with a last-line filter that keeps prompts and keys out.

Every line is one JSON object: time, level, logger, message, pid, request id, and the record's `extra`
fields. `RedactionFilter` sits on the handlers (ours, gunicorn's and uvicorn's in the worker), so it sees
every record whichever logger emitted it:

- DEBUG records of the HTTP and vendor SDK loggers (`httpx`, `httpx2`, `httpcore`, `anthropic`, `openai`)
  are dropped: at DEBUG those SDKs log the request options, i.e. the messages and the headers. The
  loggers are set to WARNING (their INFO line per upstream call repeats the access line); their
  warnings and errors pass.
- An exception keeps its type and its traceback frames but not its message, which can quote input.
- Message text and `extra` values are redacted: configured secrets, bearer tokens, `sk-...` keys,
  credential fields, and message-content fields of anything that looks like a request body.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any

import orjson

from llm_api.utils.context import request_context
from llm_api.utils.redaction import Redactor

# LogRecord attributes that are not user-supplied `extra` fields.
# uvicorn's `color_message` duplicates `message` with ANSI colour codes: not for JSON lines.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)
_UNCHANGED = frozenset({int, float, bool, type(None)})
# Loggers that log request bodies and headers at DEBUG.
SDK_LOGGERS = ("httpx", "httpx2", "httpcore", "anthropic", "openai")
# Database loggers: SQLAlchemy logs every statement with its parameters at INFO, aiosqlite every call at
# DEBUG (both follow the root level). Kept at WARNING; migrations say what they did on llm_api.store.
DATABASE_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic")
# Loggers whose handlers gunicorn and uvicorn install in the worker (not ours, but filtered too).
SERVER_LOGGERS = ("gunicorn.error", "gunicorn.access", "uvicorn", "uvicorn.error", "uvicorn.access")


def _extra_keys(fields: dict[str, Any]) -> list[str]:
    """The names of a record's `extra` fields, in the order they were given."""
    return [key for key in fields if key not in _STANDARD and not key.startswith("_")]


def _is_sdk(name: str) -> bool:
    return any(name == sdk or name.startswith(f"{sdk}.") for sdk in SDK_LOGGERS)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the `extra` fields."""

    # The last second formatted and its text: most lines fall in the same second as the one before.
    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        entry: dict[str, Any] = {
            "time": f"{cached[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        context = request_context()
        if context is not None and "request_id" not in record.__dict__:
            entry["request_id"] = context.request_id
        fields = record.__dict__
        for key in _extra_keys(fields):
            entry[key] = fields[key]
        if record.exc_info and record.exc_info[0] is not None:
            # Exception messages and tracebacks can quote request data: keep only the type.
            entry["exception_type"] = record.exc_info[0].__name__
        elif record.exc_text:
            entry["traceback"] = record.exc_text  # frames only, made by RedactionFilter
        return orjson.dumps(entry, default=str).decode("utf-8")


def sanitized_traceback(exc_type: type[BaseException], tb: Any) -> str:
    """The frames (file, line, source) and the exception type; never the exception's message."""
    frames = "".join(traceback.format_tb(tb)) if tb is not None else ""
    return f"Traceback (most recent call last):\n{frames}{exc_type.__name__}: <message withheld>"


class RedactionFilter(logging.Filter):
    """The last line of defence on every handler: no prompt, no key, whoever logs."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redactor = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and _is_sdk(record.name):
            return False
        if getattr(record, "_llm_api_redacted", False):
            return True  # already done by the filter of another handler
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            record.__dict__.setdefault("exception_type", exc_type.__name__)
            record.exc_text = sanitized_traceback(exc_type, tb)
            record.exc_info = None
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: log its bare template
            message = str(record.msg)
        text = self.redactor.text
        record.msg = text(message)
        record.args = None
        fields = record.__dict__
        for key in _extra_keys(fields):
            value = fields[key]
            if type(value) is str:
                fields[key] = text(value)
            elif type(value) not in _UNCHANGED:  # what Redactor.value returns as it is, without the call
                fields[key] = self.redactor.value(value)
        fields["_llm_api_redacted"] = True
        return True


def configure_logging(level: str, *, secrets: Iterable[str] = ()) -> None:
    """Send every logger to stdout as JSON at `level`, through the redaction filter (idempotent).

    Called in the app factory (in the gunicorn master, with preload_app) and again in each worker's
    lifespan: a SIGHUP makes the master re-apply gunicorn's logging config, which drops this handler, and
    the re-forked workers do not import the app again. gunicorn's and uvicorn's handlers get the same filter.
    """
    redaction = RedactionFilter(secrets)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(redaction)
    handler._llm_api = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_llm_api", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    numeric = logging.getLevelName(level)
    # Don't even build their DEBUG records (the filter drops them anyway); their INFO lines ("HTTP Request:
    # POST … 200 OK" per upstream call) repeat what the access line says, at a cost on every request.
    for name in (*SDK_LOGGERS, *DATABASE_LOGGERS):
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    foreign = {
        id(h): h
        for name in ("", *SERVER_LOGGERS, *SDK_LOGGERS)
        for h in logging.getLogger(name).handlers
        if not getattr(h, "_llm_api", False)
    }
    for other in foreign.values():
        for old in [f for f in other.filters if isinstance(f, RedactionFilter)]:
            other.removeFilter(old)
        other.addFilter(redaction)
