"""The JSON log formatter: one object per line, without uvicorn's ANSI-coloured duplicate message; the
access line's fields, their order and their redaction."""

from __future__ import annotations

import io
import json
import logging

from llm_api.middleware import RequestContextMiddleware
from llm_api.utils.context import RequestContext
from llm_api.utils.logging import JsonFormatter, RedactionFilter


def test_uvicorn_color_message_is_not_in_the_json_line() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None
    )
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Started server process [7]"
    assert "color_message" not in line
    assert "\x1b" not in json.dumps(line)


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("llm_api.access", logging.INFO, __file__, 1, "request", None, None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    record.__dict__.update(extra)
    return record


def test_each_line_has_its_own_second() -> None:
    formatter = JsonFormatter()
    times = [
        json.loads(formatter.format(_record(t)))["time"] for t in (1700000000.25, 1700000001.5, 1700000000.75)
    ]
    assert times == ["2023-11-14T22:13:20.250Z", "2023-11-14T22:13:21.500Z", "2023-11-14T22:13:20.750Z"]


def test_the_line_keeps_the_extra_fields_in_order_even_one_added_after_the_filter() -> None:
    record = _record(1700000000.0, b=1, a="x", _private="no")
    assert RedactionFilter().filter(record)
    record.late = "sk-" + "y" * 20  # added after the filter: not redacted by it, but still in the line
    line = json.loads(JsonFormatter().format(record))
    assert list(line)[-3:] == ["b", "a", "late"] and "_private" not in line
    assert line["late"] == record.late


def test_the_access_line_fields_values_and_redaction() -> None:
    secret = "client-key-0123456789"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter([secret]))
    access = logging.getLogger("llm_api.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        context = RequestContext(request_id=secret, started=0.0, key_id="key_0a1b", model="sk-abcdefgh1234")
        context.provider, context.attempts, context.input_tokens, context.ttft_ms = "anthropic", 1, 7, 1.23456
        context.route = [{"deployment": "d1", "outcome": "served", "error_type": None}]
        scope = {"type": "http", "method": "POST", "path": "/v1/chat", "headers": []}
        RequestContextMiddleware._log_access(scope, context, 200, 4.5)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    line = json.loads(stream.getvalue())
    assert secret not in stream.getvalue()
    assert list(line)[:5] == ["time", "level", "logger", "message", "pid"]
    assert {k: v for k, v in line.items() if k not in ("time", "pid")} == {
        "level": "INFO",
        "logger": "llm_api.access",
        "message": "request",
        "request_id": "[REDACTED]",
        "key_id": "key_0a1b",
        "method": "POST",
        "path": "/v1/chat",
        "status": 200,
        "model": "[REDACTED]",
        "provider": "anthropic",
        "stream": False,
        "attempts": 1,
        "input_tokens": 7,
        "output_tokens": None,
        "latency_ms": 4.5,
        "ttft_ms": 1.235,
        "error_type": None,
        "route": [{"deployment": "d1", "outcome": "served", "error_type": None}],
        "fallbacks": 0,
    }
    assert list(line)[5:] == [
        "request_id",
        "key_id",
        "method",
        "path",
        "status",
        "model",
        "provider",
        "stream",
        "attempts",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "ttft_ms",
        "error_type",
        "route",
        "fallbacks",
    ]
