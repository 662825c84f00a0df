"""OpenAPI descriptions shared by the vendor-format routes: their error bodies and 200 answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


class AnthropicErrorBody(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    type: Literal["error"]
    error: AnthropicErrorBody
    request_id: str | None = None


_STATUSES = (400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504)
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": OpenAIError} for status in _STATUSES}
ANTHROPIC_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": AnthropicError} for status in (*_STATUSES, 529)
}


# One event of a `text/event-stream` answer: OpenAPI 3.1 has an event stream's `schema` describe each event
# (3.2's `itemSchema`), with the fields of the SSE wire format.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
SSE_CONTENT: dict[str, Any] = {"text/event-stream": {"schema": SSE_EVENT}}


def json_or_sse(description: str) -> dict[str, Any]:
    """A 200 that is a JSON object, or an SSE stream when the request asked for `stream: true`."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}, **SSE_CONTENT},
    }


# /v1/models answers in OpenAI's format, or Anthropic's when the request carries anthropic-version.
EITHER_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": "An error in OpenAI's format, or Anthropic's with `anthropic-version`",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/OpenAIError"},
                        {"$ref": "#/components/schemas/AnthropicError"},
                    ]
                }
            }
        },
    }
    for status in _STATUSES
}
