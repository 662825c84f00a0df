"""The gateway's own `/v1/chat` format to and from the neutral chat model (text only)."""

from __future__ import annotations

import orjson

from llm_api.chat_model import Chat, ChatResult, EventBatch, Message, Text, TextDelta
from llm_api.schemas import ChatRequest


def decode_request(request: ChatRequest, *, default_model: str) -> tuple[Chat, frozenset[str]]:
    """The neutral chat, and the parameters the client left at their defaults (dropped silently).

    Leading system messages become `Chat.system`; later ones stay in place as system messages.
    """
    messages = request.messages
    lead = 0
    while lead < len(messages) and messages[lead].role == "system":
        lead += 1
    chat = Chat(
        model=request.model or default_model,
        system=tuple(Text(m.content) for m in messages[:lead]),
        messages=tuple(Message(m.role, (Text(m.content),)) for m in messages[lead:]),
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        stream=request.stream,
    )
    defaulted = frozenset() if "temperature" in request.model_fields_set else frozenset({"temperature"})
    return chat, defaulted


def encode_response(result: ChatResult) -> bytes:
    return orjson.dumps(
        {
            "id": result.id,
            "content": result.text,
            "model": result.model,
            "input_tokens": result.usage.prompt_tokens,
            "output_tokens": result.usage.output_tokens,
            "stop_reason": result.stop_reason,
        }
    )


def encode_stream_batch(batch: EventBatch) -> bytes:
    """One `data: {"delta": ...}` event per text delta (b"" when the batch holds none)."""
    return b"".join(
        [
            b'data: {"delta":' + orjson.dumps(event.text) + b"}\n\n"
            for event in batch.events
            if isinstance(event, TextDelta) and event.text
        ]
    )
