"""The neutral `Chat` → a Chat Completions request body (for a client that spoke another format).

Decisions:
- `Chat.system` becomes the first system message; a `Message(role="system")` stays in place.
- A user turn's `ToolResult` blocks become `tool` messages BEFORE the rest of the turn (OpenAI's order:
  results answer the assistant's calls). OpenAI's tool messages carry only text, so images in a result
  move to the user message right after them. `is_error` has no OpenAI equivalent and is not sent.
- Thinking blocks are never sent to OpenAI (it cannot take them back): named "thinking" in `dropped`.
- `parallel_tool_calls` and `tool_choice` are sent only with tools (OpenAI refuses them without).
- A token budget without an effort maps to `reasoning_effort`: ≤2048 low, ≤8192 medium, else high.
- `Chat.unmapped` came from another format (`top_k`...): every entry is named in `dropped`, none sent.
- Only extras under the "openai" key are emitted (see `_common.EXTRAS_KEY`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llm_api.chat_model import (
    Chat,
    Image,
    Message,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
)
from llm_api.codecs.openai_chat._common import dump_arguments, openai_extras

LOW_BUDGET_MAX = 2048
MEDIUM_BUDGET_MAX = 8192


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """A request body for the upstream, and the names of what could not be sent in it."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()


def _text_part(block: Text) -> dict[str, Any]:
    return {"type": "text", "text": block.text, **openai_extras(block.extras)}


def _image_part(block: Image) -> dict[str, Any]:
    extras = dict(openai_extras(block.extras))
    detail = extras.pop("image_url", None)
    url = block.url if block.url is not None else f"data:{block.media_type};base64,{block.data}"
    image_url = {"url": url, **(detail if isinstance(detail, Mapping) else {})}
    return {"type": "image_url", "image_url": image_url, **extras}


def _content(blocks: Sequence[Text | Image]) -> str | list[dict[str, Any]]:
    """A lone plain text as a string (what most clients send), anything else as parts."""
    if not blocks:
        return ""
    if len(blocks) == 1 and isinstance(blocks[0], Text) and not openai_extras(blocks[0].extras):
        return blocks[0].text
    return [_text_part(block) if isinstance(block, Text) else _image_part(block) for block in blocks]


def _message_extras(message: Message) -> Mapping[str, Any]:
    return openai_extras(message.extras)


def _tool_call(block: ToolCall) -> dict[str, Any]:
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": dump_arguments(block.arguments)},
        **openai_extras(block.extras),
    }


class _Encoder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.dropped: list[str] = []

    def drop(self, name: str) -> None:
        if name not in self.dropped:
            self.dropped.append(name)

    def system(self, texts: Iterable[Text], extras: Mapping[str, Any]) -> None:
        self.messages.append({"role": "system", "content": _content(list(texts)), **extras})

    def user(self, message: Message) -> None:
        rest: list[Text | Image] = []
        for block in message.content:
            if isinstance(block, ToolResult):
                texts = [part for part in block.content if isinstance(part, Text)]
                rest.extend(part for part in block.content if isinstance(part, Image))
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.tool_call_id,
                        "content": _content(texts),
                        **openai_extras(block.extras),
                    }
                )
        for block in message.content:
            if isinstance(block, Text | Image):
                rest.append(block)
            elif isinstance(block, Thinking):
                self.drop("thinking")
            elif isinstance(block, ToolCall):
                self.drop("user_tool_call")
        if rest:
            self.messages.append({"role": "user", "content": _content(rest), **_message_extras(message)})

    def assistant(self, message: Message) -> None:
        texts: list[Text | Image] = []
        calls: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, Text):
                texts.append(block)
            elif isinstance(block, ToolCall):
                calls.append(_tool_call(block))
            elif isinstance(block, Thinking):
                self.drop("thinking")
            elif isinstance(block, Image):
                self.drop("assistant_image")
            else:
                self.drop("assistant_tool_result")
        # `null` content only beside tool calls: OpenAI refuses an assistant message with neither.
        content = _content(texts) if texts else (None if calls else "")
        encoded: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            encoded["tool_calls"] = calls
        self.messages.append({**encoded, **_message_extras(message)})


def reasoning_effort(reasoning: Reasoning) -> str:
    """An effort as OpenAI names it; a budget alone is mapped by its size."""
    if reasoning.effort is not None:
        return reasoning.effort
    budget = reasoning.budget_tokens or 0
    if budget <= LOW_BUDGET_MAX:
        return "low"
    return "medium" if budget <= MEDIUM_BUDGET_MAX else "high"


def _response_format(value: ResponseFormat) -> dict[str, Any]:
    if value.kind == "json_schema" and value.schema is not None:
        spec: dict[str, Any] = {"name": value.name or "response", "schema": value.schema}
        if value.strict is not None:
            spec["strict"] = value.strict
        return {"type": "json_schema", "json_schema": spec}
    return {"type": "text" if value.kind == "text" else "json_object"}


def _tool_choice(chat: Chat) -> str | dict[str, Any] | None:
    choice = chat.tool_choice
    if choice is None:
        return None
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def encode_request(
    chat: Chat, *, max_tokens_param: Literal["max_tokens", "max_completion_tokens"]
) -> EncodedRequest:
    """The neutral chat as an OpenAI body; `max_tokens_param` is the name the model wants."""
    encoder = _Encoder()
    if chat.system:
        encoder.system(chat.system, {})
    for message in chat.messages:
        if message.role == "system":
            texts = [block for block in message.content if isinstance(block, Text)]
            encoder.system(texts, _message_extras(message))
        elif message.role == "user":
            encoder.user(message)
        else:
            encoder.assistant(message)
    body: dict[str, Any] = {"model": chat.model, "messages": encoder.messages}
    if chat.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description is not None else {}),
                    "parameters": tool.parameters,
                    **openai_extras(tool.extras),
                },
            }
            for tool in chat.tools
        ]
        tool_choice = _tool_choice(chat)
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        if chat.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = chat.parallel_tool_calls
    if chat.max_tokens is not None:
        body[max_tokens_param] = chat.max_tokens
    if chat.temperature is not None:
        body["temperature"] = chat.temperature
    if chat.top_p is not None:
        body["top_p"] = chat.top_p
    if chat.stop:
        body["stop"] = list(chat.stop)
    if chat.response_format is not None:
        body["response_format"] = _response_format(chat.response_format)
    if chat.reasoning is not None:
        body["reasoning_effort"] = reasoning_effort(chat.reasoning)
    if chat.user is not None:
        body["user"] = chat.user
    if chat.stream:
        # Always: the gateway counts the tokens of every stream.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for name in chat.unmapped:
        encoder.drop(name)
    return EncodedRequest(body=body, dropped=tuple(encoder.dropped))
