"""Messages `message` objects to and from the neutral `ChatResult`, and the usage of a relayed answer.

Stop reasons: Anthropic's own values pass through; `model_context_window_exceeded` is `max_tokens` (the
answer was cut short, OpenAI's `length`); any other value is `end_turn`. Blocks the neutral model does not
hold (server tool use and results) are left out of a decoded result.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from llm_api.chat_model import (
    EMPTY,
    Block,
    ChatResult,
    Image,
    StopReason,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    Usage,
)
from llm_api.codecs.anthropic_messages._common import make_extras
from llm_api.codecs.anthropic_messages.request_encode import FORCED_JSON_TOOL

_STOP_REASONS: Mapping[str, StopReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "refusal": "refusal",
    "pause_turn": "pause_turn",
    "model_context_window_exceeded": "max_tokens",
}


def stop_reason_of(value: object) -> StopReason | None:
    """The neutral stop reason of Anthropic's `stop_reason` (None while a stream has not ended)."""
    if value is None:
        return None
    return _STOP_REASONS.get(value, "end_turn") if isinstance(value, str) else "end_turn"


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(body: Mapping[str, Any]) -> Usage:
    """The usage of a `message` object (`body["usage"]`) or of a bare usage object."""
    usage = body.get("usage", body)
    if not isinstance(usage, Mapping):
        return Usage()
    return Usage(
        input_tokens=_count(usage, "input_tokens"),
        output_tokens=_count(usage, "output_tokens"),
        cache_read_tokens=_count(usage, "cache_read_input_tokens"),
        cache_write_tokens=_count(usage, "cache_creation_input_tokens"),
    )


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def _block(block: Mapping[str, Any], *, unwrap_forced_json: bool) -> Block | None:
    kind = block.get("type")
    if kind == "text":
        return Text(str(block.get("text", "")), make_extras(block, "text"))
    if kind == "tool_use":
        arguments = block.get("input")
        arguments = arguments if isinstance(arguments, Mapping) else EMPTY
        if unwrap_forced_json and block.get("name") == FORCED_JSON_TOOL:
            return Text(orjson.dumps(arguments).decode())
        return ToolCall(id=str(block.get("id", "")), name=str(block.get("name", "")), arguments=arguments)
    if kind == "thinking":
        return Thinking(text=str(block.get("thinking", "")), signature=block.get("signature") or None)
    if kind == "redacted_thinking":
        return Thinking(redacted=str(block.get("data", "")))
    return None


def decode_response(body: Mapping[str, Any], *, unwrap_forced_json: bool = False) -> ChatResult:
    """The neutral result of a Messages `message` object.

    With `unwrap_forced_json` (the request asked for JSON through `FORCED_JSON_TOOL`), that tool's input
    becomes the text content and the stop reason `end_turn`.
    """
    blocks = [_block(block, unwrap_forced_json=unwrap_forced_json) for block in body.get("content") or ()]
    content = tuple(block for block in blocks if block is not None)
    stop_reason = stop_reason_of(body.get("stop_reason"))
    if unwrap_forced_json and stop_reason == "tool_use" and not any(isinstance(b, ToolCall) for b in content):
        stop_reason = "end_turn"
    stop_sequence = body.get("stop_sequence")
    return ChatResult(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        content=content,
        stop_reason=stop_reason,
        usage=usage_of(body),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
    )


def message_id(value: str) -> str:
    """An Anthropic-looking message id: `value` if it is one, else `msg_` and `value` (or a random id)."""
    if value.startswith("msg_"):
        return value
    return f"msg_{value}" if value else f"msg_{secrets.token_hex(12)}"


def encode_block(block: Block) -> dict[str, Any] | None:
    """A response content block; None for blocks an answer does not hold (empty text, tool results)."""
    if isinstance(block, Text):
        return {"type": "text", "text": block.text} if block.text else None
    if isinstance(block, ToolCall):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.arguments)}
    if isinstance(block, Thinking):
        if block.redacted is not None:
            return {"type": "redacted_thinking", "data": block.redacted}
        return {"type": "thinking", "thinking": block.text, "signature": block.signature or ""}
    assert isinstance(block, ToolResult | Image)
    return None


def encode_response(result: ChatResult) -> dict[str, Any]:
    """The Messages `message` object of a neutral result (from a model behind another vendor)."""
    blocks = [encode_block(block) for block in result.content]
    return {
        "id": message_id(result.id),
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": [block for block in blocks if block is not None],
        "stop_reason": result.stop_reason or "end_turn",
        "stop_sequence": result.stop_sequence,
        "usage": usage_json(result.usage),
    }
