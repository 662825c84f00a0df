"""The JSON log formatter: one object per line, without uvicorn's ANSI-coloured duplicate message."""

from __future__ import annotations

import json
import logging

from llm_api.utils.logging import JsonFormatter


def test_uvicorn_color_message_is_not_in_the_json_line() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None
    )
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Started server process [7]"
    assert "color_message" not in line
    assert "\x1b" not in json.dumps(line)
