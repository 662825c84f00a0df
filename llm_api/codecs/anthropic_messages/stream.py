"""Messages streams (named `event:` SSE) to and from neutral stream events.

- `StreamDecoder`: the upstream's parsed events → neutral events (the adapter, when the client spoke
  another format). An in-stream `error` event raises the matching `UpstreamError`.
- `StreamEncoder`: neutral events → the bytes the client reads, as Anthropic sends them and as the
  anthropic SDK's `MessageStream` accepts them (the path-3 rules: `message_start` first, blocks numbered
  0..n, never an empty text block, `message_delta` with the cumulative usage, `message_stop` last).

Same-vendor relays read the upstream's events with `passthrough.PassthroughStreamObserver` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from llm_api.chat_model import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgumentsDelta,
    ToolCall,
    Usage,
)
from llm_api.codecs import WRONG_SHAPE
from llm_api.codecs.anthropic_messages.request_encode import FORCED_JSON_TOOL
from llm_api.codecs.anthropic_messages.response import message_id, stop_reason_of, usage_json, usage_of
from llm_api.errors import UpstreamError, upstream_error_for_status

PROVIDER = "anthropic"


def merged_usage(start: Usage, delta: Mapping[str, Any]) -> Usage:
    """A message_delta's usage is cumulative; the counts it leaves out (or null) keep their earlier value."""
    given = usage_of(delta)

    def has(key: str) -> bool:
        return delta.get(key) is not None

    return Usage(
        input_tokens=given.input_tokens if has("input_tokens") else start.input_tokens,
        output_tokens=given.output_tokens if has("output_tokens") else start.output_tokens,
        cache_read_tokens=given.cache_read_tokens
        if has("cache_read_input_tokens")
        else start.cache_read_tokens,
        cache_write_tokens=(
            given.cache_write_tokens if has("cache_creation_input_tokens") else start.cache_write_tokens
        ),
    )


def stream_error(event: Mapping[str, Any], *, provider: str = PROVIDER) -> UpstreamError:
    """The error of an in-stream `error` event (`overloaded_error` → retryable before the first delta)."""
    error = event.get("error")
    kind = error.get("type") if isinstance(error, Mapping) else None
    return upstream_error_for_status(
        200, provider=provider, error_kind=kind if isinstance(kind, str) else None
    )


class StreamDecoder:
    """Upstream Messages events → neutral events, one `feed` per event (`ping` yields nothing).

    Blocks the neutral model does not hold (server tool use and results) are skipped and the rest
    renumbered 0..n. With `unwrap_forced_json`, the `FORCED_JSON_TOOL` call streams as text (its JSON
    arguments) and its `tool_use` stop becomes `end_turn`. `done` turns true at `message_stop`.
    """

    def __init__(self, *, unwrap_forced_json: bool = False, provider: str = PROVIDER) -> None:
        self.unwrap_forced_json = unwrap_forced_json
        self.provider = provider
        self.done = False
        self._start_usage = Usage()
        self._indexes: dict[int, int] = {}  # upstream block index → neutral index
        self._unwrapped: set[int] = set()  # upstream indexes of the forced JSON tool
        self._tool_calls = 0

    def feed(self, name: str, event: Mapping[str, Any]) -> list[StreamEvent]:
        kind = event.get("type") or name
        if kind == "error":
            raise stream_error(event, provider=self.provider)
        try:
            return self._feed(kind, event)
        except WRONG_SHAPE as exc:
            raise UpstreamError(
                f"{self.provider} sent a stream event of an unexpected shape", provider=self.provider
            ) from exc

    def _feed(self, kind: str, event: Mapping[str, Any]) -> list[StreamEvent]:
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._block_start(int(event["index"]), event["content_block"])
        if kind == "content_block_stop":
            index = self._indexes.get(int(event["index"]))
            return [BlockStop(index)] if index is not None else []
        if kind == "message_start":
            message = event["message"]
            self._start_usage = usage_of(message)
            return [
                MessageStart(str(message.get("id", "")), str(message.get("model", "")), self._start_usage)
            ]
        if kind == "message_delta":
            delta = event.get("delta") or {}
            stop_reason = stop_reason_of(delta.get("stop_reason"))
            if self._unwrapped and stop_reason == "tool_use" and not self._tool_calls:
                stop_reason = "end_turn"
            stop_sequence = delta.get("stop_sequence")
            usage = merged_usage(self._start_usage, event.get("usage") or {})
            return [
                MessageDelta(stop_reason, usage, stop_sequence if isinstance(stop_sequence, str) else None)
            ]
        if kind == "message_stop":
            self.done = True
        return []

    def _block_start(self, upstream: int, block: Mapping[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        index = len(self._indexes)
        events: list[StreamEvent] = []
        if kind == "text":
            events = [BlockStart(index, Text(""))]
            if block.get("text"):
                events.append(TextDelta(index, str(block["text"])))
        elif kind == "tool_use" and self.unwrap_forced_json and block.get("name") == FORCED_JSON_TOOL:
            self._unwrapped.add(upstream)
            events = [BlockStart(index, Text(""))]
        elif kind == "tool_use":
            self._tool_calls += 1
            events = [BlockStart(index, ToolCall(id=str(block["id"]), name=str(block["name"])))]
            if block.get("input"):  # Anthropic starts with {}; a complete input here is still the input
                events.append(ToolArgumentsDelta(index, orjson.dumps(block["input"]).decode()))
        elif kind == "thinking":
            events = [BlockStart(index, Thinking())]
            if block.get("thinking"):
                events.append(ThinkingDelta(index, text=str(block["thinking"])))
            if block.get("signature"):
                events.append(ThinkingDelta(index, signature=str(block["signature"])))
        elif kind == "redacted_thinking":
            events = [BlockStart(index, Thinking(redacted=str(block["data"])))]
        else:
            return []
        self._indexes[upstream] = index
        return events

    def _delta(self, event: Mapping[str, Any]) -> list[StreamEvent]:
        upstream = int(event["index"])
        index = self._indexes.get(upstream)
        delta = event["delta"]
        kind = delta.get("type")
        if index is None:
            return []
        if kind == "text_delta":
            text = str(delta["text"])
            return [TextDelta(index, text)] if text else []
        if kind == "input_json_delta":
            piece = str(delta["partial_json"])
            if not piece:
                return []
            if upstream in self._unwrapped:
                return [TextDelta(index, piece)]
            return [ToolArgumentsDelta(index, piece)]
        if kind == "thinking_delta":
            text = str(delta["thinking"])
            return [ThinkingDelta(index, text=text)] if text else []
        if kind == "signature_delta":
            return [ThinkingDelta(index, signature=str(delta["signature"]))]
        return []  # citations_delta and deltas of later API versions: nothing neutral to carry


def _frame(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class StreamEncoder:
    """Neutral events → the Messages SSE bytes the client reads.

    `id` and `model` name the message in `message_start` (`id` gets a `msg_` prefix unless it has one).
    A text block is opened only at its first non-empty text, so a block that never gets any is left
    out and the blocks after it renumbered. After `message_delta` comes `message_stop`; `finished` is
    then true and later events are ignored. `error()` is the frame that ends a failed stream.
    """

    def __init__(self, *, id: str, model: str) -> None:
        self.id = message_id(id)
        self.model = model
        self.started = False
        self.finished = False
        self._indexes: dict[int, int] = {}  # neutral index → client index, for blocks opened
        self._pending_text: int | None = None  # a text block started but not yet opened
        self._next = 0

    def encode(self, events: Iterable[StreamEvent]) -> bytes:
        frames: list[bytes] = []
        for event in events:
            if self.finished:
                break
            if not self.started:
                usage = event.usage if isinstance(event, MessageStart) else Usage()
                frames.append(self._message_start(usage))
                if isinstance(event, MessageStart):
                    continue
            frames.extend(self._event(event))
        return b"".join(frames)

    def error(self, error_type: str, message: str) -> bytes:
        """An `error` event; the stream must end after it."""
        self.finished = True
        return _frame("error", {"type": "error", "error": {"type": error_type, "message": message}})

    def _message_start(self, usage: Usage) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(usage),
        }
        return _frame("message_start", {"type": "message_start", "message": message})

    def _open(self, neutral: int, block: Mapping[str, Any]) -> bytes:
        index = self._indexes[neutral] = self._next
        self._next += 1
        return _frame(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )

    def _delta(self, neutral: int, delta: Mapping[str, Any]) -> list[bytes]:
        index = self._indexes.get(neutral)
        if index is None:
            return []
        return [
            _frame("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        ]

    def _event(self, event: StreamEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            if not event.text:
                return []
            frames = []
            if self._pending_text == event.index:
                self._pending_text = None
                frames.append(self._open(event.index, {"type": "text", "text": ""}))
            return frames + self._delta(event.index, {"type": "text_delta", "text": event.text})
        if isinstance(event, ToolArgumentsDelta):
            if not event.partial_json:
                return []
            return self._delta(event.index, {"type": "input_json_delta", "partial_json": event.partial_json})
        if isinstance(event, ThinkingDelta):
            frames = []
            if event.text:
                frames += self._delta(event.index, {"type": "thinking_delta", "thinking": event.text})
            if event.signature:
                frames += self._delta(event.index, {"type": "signature_delta", "signature": event.signature})
            return frames
        if isinstance(event, BlockStart):
            return self._block_start(event)
        if isinstance(event, BlockStop):
            if self._pending_text == event.index:
                self._pending_text = None
                return []
            index = self._indexes.pop(event.index, None)
            if index is None:
                return []
            return [_frame("content_block_stop", {"type": "content_block_stop", "index": index})]
        if isinstance(event, MessageDelta):
            return self._message_delta(event)
        return []  # a second MessageStart: nothing to say

    def _block_start(self, event: BlockStart) -> list[bytes]:
        block = event.block
        if isinstance(block, Text):
            self._pending_text = event.index
            return self._event(TextDelta(event.index, block.text)) if block.text else []
        if isinstance(block, ToolCall):
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            frames = [self._open(event.index, start)]
            if block.arguments:  # the neutral stream sends them as deltas; a start that has them still counts
                arguments = orjson.dumps(dict(block.arguments)).decode()
                frames += self._event(ToolArgumentsDelta(event.index, arguments))
            return frames
        if block.redacted is not None:
            return [self._open(event.index, {"type": "redacted_thinking", "data": block.redacted})]
        frames = [self._open(event.index, {"type": "thinking", "thinking": "", "signature": ""})]
        return frames + self._event(ThinkingDelta(event.index, block.text, block.signature))

    def _message_delta(self, event: MessageDelta) -> list[bytes]:
        frames = [
            _frame("content_block_stop", {"type": "content_block_stop", "index": index})
            for index in self._indexes.values()
        ]
        self._indexes.clear()
        self._pending_text = None
        delta = {"stop_reason": event.stop_reason or "end_turn", "stop_sequence": event.stop_sequence}
        usage = usage_json(event.usage)
        frames.append(_frame("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        frames.append(_frame("message_stop", {"type": "message_stop"}))
        self.finished = True
        return frames
