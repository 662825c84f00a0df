"""A neutral answer as stored bytes, as a stream of neutral events, and back from a stream.

- `result_to_json` / `result_from_json`: the cache's value format (versioned, tagged blocks).
- `result_to_events`: a stored answer replayed as a real stream: MessageStart, per block BlockStart, its
  deltas, BlockStop, then MessageDelta; any endpoint's encoder turns it into its own SSE.
- `ResultBuilder`: the other way, for storing a streamed answer: it yields a ChatResult only for a
  stream that ended properly (MessageDelta seen, every block closed); a failed, cancelled or truncated
  stream gives None, so it is never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_api.chat_model import (
    Block,
    BlockStart,
    BlockStop,
    ChatResult,
    Image,
    MessageDelta,
    MessageStart,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgumentsDelta,
    ToolCall,
    ToolResult,
    Usage,
)

FORMAT_VERSION = 1
# Replayed text goes out in pieces of at most this many characters (a stream, not one lump).
REPLAY_CHUNK_CHARS = 128


def result_to_json(result: ChatResult, *, served: Mapping[str, str | None] | None = None) -> bytes:
    return orjson.dumps(
        {
            "v": FORMAT_VERSION,
            "id": result.id,
            "model": result.model,
            "content": [_block(b) for b in result.content],
            "stop_reason": result.stop_reason,
            "stop_sequence": result.stop_sequence,
            "usage": _usage(result.usage),
            "served": dict(served or {}),
        }
    )


def result_from_json(data: bytes) -> tuple[ChatResult, dict[str, str | None]]:
    """The stored answer and what served it; ValueError if it is not this version's format."""
    raw = orjson.loads(data)
    if not isinstance(raw, dict) or raw.get("v") != FORMAT_VERSION:
        raise ValueError("not a cached answer of this version")
    try:
        result = ChatResult(
            id=str(raw["id"]),
            model=str(raw["model"]),
            content=tuple(_unblock(b) for b in raw["content"]),
            stop_reason=raw["stop_reason"],
            usage=Usage(**raw["usage"]),
            stop_sequence=raw.get("stop_sequence"),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError("not a cached answer of this version") from exc
    served = raw.get("served") or {}
    return result, {str(k): (None if v is None else str(v)) for k, v in served.items()}


def result_to_events(result: ChatResult, *, chunk_chars: int = REPLAY_CHUNK_CHARS) -> list[StreamEvent]:
    """The answer as the stream an adapter would have produced."""
    usage = result.usage
    events: list[StreamEvent] = [
        MessageStart(
            id=result.id,
            model=result.model,
            usage=Usage(usage.input_tokens, 0, usage.cache_read_tokens, usage.cache_write_tokens),
        )
    ]
    index = 0
    for block in result.content:
        if isinstance(block, Text):
            events.append(BlockStart(index, Text("")))
            events.extend(TextDelta(index, piece) for piece in _pieces(block.text, chunk_chars))
        elif isinstance(block, ToolCall):
            events.append(BlockStart(index, ToolCall(id=block.id, name=block.name)))
            arguments = orjson.dumps(dict(block.arguments)).decode()
            events.extend(ToolArgumentsDelta(index, piece) for piece in _pieces(arguments, chunk_chars))
        elif isinstance(block, Thinking):
            if block.redacted is not None:
                events.append(BlockStart(index, Thinking(redacted=block.redacted)))
            else:
                events.append(BlockStart(index, Thinking()))
                events.extend(ThinkingDelta(index, text=piece) for piece in _pieces(block.text, chunk_chars))
                if block.signature is not None:
                    events.append(ThinkingDelta(index, signature=block.signature))
        else:
            continue  # images and tool results are never part of an answer
        events.append(BlockStop(index))
        index += 1
    events.append(MessageDelta(result.stop_reason, usage, result.stop_sequence))
    return events


class ResultBuilder:
    """Collects a stream's events; `result()` is the complete answer, or None if the stream did not end
    properly (so a failed, cancelled or truncated stream is never stored)."""

    def __init__(self) -> None:
        self._start: MessageStart | None = None
        self._end: MessageDelta | None = None
        self._blocks: dict[int, list[Any]] = {}
        self._open: set[int] = set()

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, MessageStart):
            self._start = event
        elif isinstance(event, BlockStart):
            self._blocks[event.index] = [event.block, []]
            self._open.add(event.index)
        elif isinstance(event, TextDelta | ToolArgumentsDelta | ThinkingDelta):
            self._blocks[event.index][1].append(event)
        elif isinstance(event, BlockStop):
            self._open.discard(event.index)
        elif isinstance(event, MessageDelta):
            self._end = event

    def result(self) -> ChatResult | None:
        if self._start is None or self._end is None or self._open:
            return None
        try:
            content = tuple(self._finish(*self._blocks[i]) for i in sorted(self._blocks))
        except ValueError:  # tool arguments that are not a JSON object
            return None
        return ChatResult(
            id=self._start.id,
            model=self._start.model,
            content=content,
            stop_reason=self._end.stop_reason,
            usage=self._end.usage,
            stop_sequence=self._end.stop_sequence,
        )

    @staticmethod
    def _finish(start: Text | ToolCall | Thinking, deltas: list[Any]) -> Block:
        if isinstance(start, Text):
            return Text("".join(d.text for d in deltas))
        if isinstance(start, ToolCall):
            text = "".join(d.partial_json for d in deltas)
            arguments = orjson.loads(text) if text else {}
            if not isinstance(arguments, dict):
                raise ValueError("tool arguments must be an object")
            return ToolCall(id=start.id, name=start.name, arguments=arguments)
        if start.redacted is not None:
            return start
        signature = next((d.signature for d in reversed(deltas) if d.signature is not None), None)
        return Thinking(text="".join(d.text for d in deltas), signature=signature)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def _block(block: Block) -> dict[str, Any]:
    extras = dict(block.extras)
    if isinstance(block, Text):
        return {"type": "text", "text": block.text, "extras": extras}
    if isinstance(block, ToolCall):
        return {"type": "tool_call", "id": block.id, "name": block.name, "arguments": dict(block.arguments)}
    if isinstance(block, Thinking):
        return {
            "type": "thinking",
            "text": block.text,
            "signature": block.signature,
            "redacted": block.redacted,
        }
    if isinstance(block, Image):
        return {"type": "image", "media_type": block.media_type, "data": block.data, "url": block.url}
    return {
        "type": "tool_result",
        "tool_call_id": block.tool_call_id,
        "content": [_block(part) for part in block.content],
        "is_error": block.is_error,
    }


def _unblock(raw: dict[str, Any]) -> Block:
    kind = raw["type"]
    if kind == "text":
        return Text(raw["text"], extras=raw.get("extras") or {})
    if kind == "tool_call":
        return ToolCall(id=raw["id"], name=raw["name"], arguments=raw["arguments"])
    if kind == "thinking":
        return Thinking(text=raw["text"], signature=raw["signature"], redacted=raw["redacted"])
    if kind == "image":
        return Image(media_type=raw["media_type"], data=raw["data"], url=raw["url"])
    if kind == "tool_result":
        parts = tuple(_unblock(part) for part in raw["content"])
        return ToolResult(
            tool_call_id=raw["tool_call_id"],
            content=tuple(p for p in parts if isinstance(p, Text | Image)),
            is_error=bool(raw["is_error"]),
        )
    raise KeyError(kind)
