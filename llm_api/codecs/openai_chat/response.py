"""`chat.completion` objects ⇄ the neutral `ChatResult`.

Decisions:
- A `refusal` (OpenAI's structured-output refusal) becomes a Text block and the stop reason `refusal`.
- Tool-call arguments that are not a JSON object (a reply cut by max_tokens, say) are kept, unparsed,
  as `{"_raw": "<the text>"}` rather than failing the whole answer.
- Thinking blocks are not sent to an OpenAI client (Chat Completions has no place for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_api.chat_model import Block, ChatResult, Text, ToolCall, Usage
from llm_api.codecs.openai_chat._common import (
    RAW_ARGUMENTS,
    completion_id,
    dump_arguments,
    finish_reason_of,
    parse_arguments,
    stop_reason_of,
    usage_from,
    usage_to,
)


def usage_of(body: Mapping[str, Any]) -> Usage:
    """The usage of a `chat.completion` (for a same-vendor answer relayed as is)."""
    return usage_from(body.get("usage"))


def tool_arguments(arguments: str) -> dict[str, Any]:
    parsed = parse_arguments(arguments)
    return parsed if parsed is not None else {RAW_ARGUMENTS: arguments}


def decode_response(body: Mapping[str, Any]) -> ChatResult:
    """An upstream `chat.completion` → neutral; one of `llm_api.codecs.WRONG_SHAPE` on a wrong shape (never
    IndexError)."""
    choices = body["choices"]
    if not choices:
        raise ValueError("no choices")
    choice = choices[0]
    message = choice["message"]
    content: list[Block] = []
    text = message.get("content")
    if text is not None and not isinstance(text, str):
        raise TypeError("message.content is not a string")
    if text:
        content.append(Text(text))
    refusal = message.get("refusal")
    if refusal:
        content.append(Text(str(refusal)))
    for call in message.get("tool_calls") or ():
        if call.get("type", "function") != "function":
            raise ValueError("a tool call that is not a function call")
        function = call["function"]
        content.append(
            ToolCall(
                id=str(call["id"]),
                name=str(function["name"]),
                arguments=tool_arguments(function["arguments"]),
            )
        )
    has_calls = any(isinstance(block, ToolCall) for block in content)
    stop_reason = "refusal" if refusal else stop_reason_of(choice.get("finish_reason"), tool_calls=has_calls)
    return ChatResult(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        content=tuple(content),
        stop_reason=stop_reason,
        usage=usage_of(body),
    )


def encode_response(result: ChatResult, *, created: int) -> dict[str, Any]:
    """A `chat.completion` for an OpenAI client."""
    texts = [block.text for block in result.content if isinstance(block, Text)]
    calls = [block for block in result.content if isinstance(block, ToolCall)]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": dump_arguments(call.arguments)},
            }
            for call in calls
        ]
    return {
        "id": completion_id(result.id),
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_of(result.stop_reason, tool_calls=bool(calls)),
            }
        ],
        "usage": usage_to(result.usage),
    }
