"""What the codec's directions share: finish reasons, usage, tool arguments, ids, the extras key."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import orjson

from llm_api.chat_model import EMPTY, StopReason, Usage

# The neutral model's `extras` bags may hold any format's fields. This codec keeps OpenAI's under this
# one key (`{"openai": {"name": "bob"}}`), emits only those, and so never sends another format's
# (`cache_control`) to OpenAI.
EXTRAS_KEY = "openai"

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]

STOP_REASON_OF_FINISH: Mapping[str, StopReason] = MappingProxyType(
    {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "content_filter": "refusal",
    }
)
FINISH_OF_STOP_REASON: Mapping[str, FinishReason] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
)


def stop_reason_of(finish_reason: Any, *, tool_calls: bool = False) -> StopReason:
    """OpenAI's `finish_reason` → neutral; a `stop` that came with tool calls is a `tool_use`."""
    reason = (
        STOP_REASON_OF_FINISH.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    )
    return "tool_use" if tool_calls and reason == "end_turn" else reason


def finish_reason_of(stop_reason: str | None, *, tool_calls: bool = False) -> FinishReason:
    """Neutral → always one of OpenAI's values.

    `tool_calls` exactly when tool calls were sent, unless cut by `length` (their arguments may be
    incomplete, which the client must know); clients' tool loops key on it.
    """
    reason = FINISH_OF_STOP_REASON.get(stop_reason or "", "stop")
    if reason == "length":
        return reason
    if tool_calls:
        return "tool_calls"
    return "stop" if reason == "tool_calls" else reason


def usage_from(usage: Mapping[str, Any] | None) -> Usage:
    """OpenAI's `usage` object → neutral: the cached part of `prompt_tokens` is not counted twice."""
    if not usage:
        return Usage()
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    return Usage(
        input_tokens=max(prompt - cached - written, 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=cached,
        cache_write_tokens=written,
    )


def usage_to(usage: Usage) -> dict[str, Any]:
    """`prompt_tokens` counts every input token, cached or written to the cache (Anthropic's too)."""
    prompt = usage.prompt_tokens
    details: dict[str, int] = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": details,
    }


def completion_id(id: str) -> str:
    """A `chatcmpl-` id: kept when it already is one, else prefixed (a fresh one when empty)."""
    if id.startswith("chatcmpl-"):
        return id
    return "chatcmpl-" + (id or secrets.token_hex(12))


def parse_arguments(arguments: str) -> dict[str, Any] | None:
    """A tool call's JSON arguments as an object; None when they are not a JSON object. "" is {}."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """orjson, also for the neutral model's read-only mappings and tuples."""
    return orjson.dumps(value, default=_plain)


# Arguments that were not a JSON object are kept as `{"_raw": text}` and sent back as that text.
RAW_ARGUMENTS = "_raw"


def dump_arguments(arguments: Mapping[str, Any]) -> str:
    raw = arguments.get(RAW_ARGUMENTS)
    if isinstance(raw, str) and len(arguments) == 1:
        return raw
    return dumps(arguments).decode()


def openai_extras(extras: Mapping[str, Any]) -> Mapping[str, Any]:
    value = extras.get(EXTRAS_KEY)
    return value if isinstance(value, Mapping) else EMPTY


def make_extras(source: Mapping[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    """The fields of `source` outside `known`, under EXTRAS_KEY (EMPTY when there are none)."""
    rest = {key: value for key, value in source.items() if key not in known}
    return MappingProxyType({EXTRAS_KEY: rest}) if rest else EMPTY
