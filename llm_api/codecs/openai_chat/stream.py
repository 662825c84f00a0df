"""`chat.completion.chunk` streams ⇄ neutral stream events.

`StreamDecoder` reads an upstream OpenAI stream (the adapter's direction); `StreamEncoder` writes one for
an OpenAI client whatever the upstream was. The encoder's rules, which the openai SDK's accumulator
relies on: a constant id and created; the role on the first chunk; each tool call its own `index`,
counted over tool calls from 0; `id`, `type` and `function.name` only in a call's first fragment (with
`arguments: ""`), later fragments only `function.arguments` pieces; no empty piece, but a call whose
arguments stayed empty ends with `"{}"`; thinking is not sent (Chat Completions has no field for it);
`finish_reason` on its own final chunk; then the usage chunk (empty `choices`) if the client asked for
it, and exactly one `data: [DONE]`. An in-stream error is one chunk with an `error` object, and the end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from llm_api.chat_model import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    StopReason,
    StreamEvent,
    Text,
    TextDelta,
    ToolArgumentsDelta,
    ToolCall,
    Usage,
)
from llm_api.codecs.openai_chat._common import (
    completion_id,
    finish_reason_of,
    stop_reason_of,
    usage_from,
    usage_to,
)
from llm_api.codecs.openai_chat.errors import error_body
from llm_api.errors import UpstreamError, upstream_error_for_status

DONE_FRAME = b"data: [DONE]\n\n"
RATE_LIMIT_KINDS = frozenset({"rate_limit_error", "rate_limit_exceeded", "requests", "tokens"})
_KIND = re.compile(r"[a-z_]{1,40}")


def stream_error(error: Any, *, provider: str) -> UpstreamError:
    """An `error` object inside an upstream stream → our hierarchy (its type only: never its message)."""
    kind = "stream_error"
    if isinstance(error, Mapping):
        for candidate in (error.get("type"), error.get("code")):
            if isinstance(candidate, str) and _KIND.fullmatch(candidate):
                kind = candidate
                break
    # A 200 stream that fails is the provider's transient trouble (retried before the first delta).
    status = 429 if kind in RATE_LIMIT_KINDS else 500
    return upstream_error_for_status(status, provider=provider, error_kind=kind)


class StreamDecoder:
    """Upstream chunks → neutral events: `feed` each parsed chunk, `finish` at `[DONE]`.

    The MessageDelta is held from the `finish_reason` until the usage chunk (or `finish`), so that it
    carries the final usage. An `error` chunk raises the matching `UpstreamError`; a wrong shape raises
    one of `llm_api.codecs.WRONG_SHAPE`. After `finish`, `stop_reason` is None if the upstream never said
    why it stopped (a stream cut short).
    """

    def __init__(self, *, provider: str = "openai") -> None:
        self._provider = provider
        self._started = False
        self._next_index = 0
        self._open: int | None = None
        self._open_is_text = False
        self._tools: dict[int, int] = {}  # OpenAI's tool-call index → our block index
        self._finish: Any = None
        self._refusal = False
        self._delta_sent = False
        self.id = ""
        self.model = ""
        self.usage: Usage | None = None

    @property
    def stop_reason(self) -> StopReason | None:
        if self._finish is None:
            return None
        if self._refusal:
            return "refusal"
        return stop_reason_of(self._finish, tool_calls=bool(self._tools))

    def _close(self, events: list[StreamEvent]) -> None:
        if self._open is not None:
            events.append(BlockStop(self._open))
            self._open = None

    def _start_block(self, events: list[StreamEvent], block: Text | ToolCall) -> int:
        self._close(events)
        index = self._open = self._next_index
        self._next_index += 1
        self._open_is_text = isinstance(block, Text)
        events.append(BlockStart(index, block))
        return index

    def _text(self, events: list[StreamEvent], text: str) -> None:
        if self._open is None or not self._open_is_text:
            self._start_block(events, Text(""))
        assert self._open is not None
        events.append(TextDelta(self._open, text))

    def _tool_call(self, events: list[StreamEvent], call: Mapping[str, Any]) -> None:
        position = int(call.get("index", len(self._tools)))
        function = call.get("function") or {}
        index = self._tools.get(position)
        if index is None:
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError("a tool call's first fragment has no function name")
            call_id = call.get("id") or f"call_{position}"
            index = self._tools[position] = self._start_block(events, ToolCall(id=str(call_id), name=name))
        elif index != self._open:
            raise ValueError("tool call fragments interleaved")
        arguments = function.get("arguments")
        if arguments:
            events.append(ToolArgumentsDelta(index, str(arguments)))

    def _message_delta(self, events: list[StreamEvent]) -> None:
        events.append(MessageDelta(stop_reason=self.stop_reason, usage=self.usage or Usage()))
        self._delta_sent = True

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        if chunk.get("error"):
            raise stream_error(chunk["error"], provider=self._provider)
        events: list[StreamEvent] = []
        if not self._started:
            self._started = True
            self.id, self.model = str(chunk.get("id") or ""), str(chunk.get("model") or "")
            events.append(MessageStart(id=self.id, model=self.model))
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never translated: only the first choice is read
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text(events, str(delta["content"]))
            if delta.get("refusal"):
                self._refusal = True
                self._text(events, str(delta["refusal"]))
            for call in delta.get("tool_calls") or ():
                self._tool_call(events, call)
            if choice.get("finish_reason"):
                self._close(events)
                self._finish = choice["finish_reason"]
        if chunk.get("usage"):
            self.usage = usage_from(chunk["usage"])
            if self._finish is not None and not self._delta_sent:
                self._message_delta(events)
        return events

    def finish(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        self._close(events)
        if self._finish is not None and not self._delta_sent:
            self._message_delta(events)
        return events


def _merged(start: Usage, final: Usage) -> Usage:
    """The final usage, with what only the start knew (Anthropic's input tokens) filled in."""
    return Usage(
        input_tokens=final.input_tokens or start.input_tokens,
        output_tokens=final.output_tokens or start.output_tokens,
        cache_read_tokens=final.cache_read_tokens or start.cache_read_tokens,
        cache_write_tokens=final.cache_write_tokens or start.cache_write_tokens,
    )


class StreamEncoder:
    """Neutral events → the `data: {...}` frames of a `chat.completion.chunk` stream for a client."""

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        head = {
            "id": completion_id(id),
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        # Every chunk starts alike: serialise that once, without the closing brace.
        self._head = b"data: " + orjson.dumps(head)[:-1]
        self._include_usage = include_usage
        self._started = False
        self._finished = False
        self._tools: dict[int, int] = {}  # our block index → the client's tool-call index
        self._empty_tools: set[int] = set()  # tool blocks whose arguments are still empty
        self._start_usage = Usage()
        self._usage = Usage()

    def _chunk(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + b',"choices":' + orjson.dumps([choice]) + b"}\n\n"

    def _start(self, out: bytearray) -> None:
        if not self._started:
            self._started = True
            out += self._chunk({"role": "assistant", "content": "", "refusal": None})

    def _finish(self, out: bytearray, stop_reason: str | None) -> None:
        self._start(out)
        self._finished = True
        for index in sorted(self._empty_tools):  # calls whose BlockStop never came
            out += self._tool_fragment(index, {"function": {"arguments": "{}"}})
        self._empty_tools.clear()
        out += self._chunk({}, finish_reason_of(stop_reason, tool_calls=bool(self._tools)))

    def _tool_fragment(self, index: int, fragment: Mapping[str, Any]) -> bytes:
        return self._chunk({"tool_calls": [{"index": self._tools[index], **fragment}]})

    def encode(self, events: Sequence[StreamEvent]) -> bytes:
        out = bytearray()
        for event in events:
            if isinstance(event, MessageStart):
                self._start_usage = event.usage
                self._start(out)
            elif isinstance(event, TextDelta):
                if event.text and event.index not in self._tools:
                    self._start(out)
                    out += self._chunk({"content": event.text})
            elif isinstance(event, ToolArgumentsDelta):
                if event.partial_json and event.index in self._tools:
                    self._empty_tools.discard(event.index)
                    out += self._tool_fragment(event.index, {"function": {"arguments": event.partial_json}})
            elif isinstance(event, BlockStart):
                if isinstance(event.block, ToolCall):
                    self._start(out)
                    self._tools[event.index] = len(self._tools)
                    self._empty_tools.add(event.index)
                    first = {"id": event.block.id, "type": "function"}
                    out += self._tool_fragment(
                        event.index, {**first, "function": {"name": event.block.name, "arguments": ""}}
                    )
            elif isinstance(event, BlockStop):
                if event.index in self._empty_tools:
                    self._empty_tools.discard(event.index)
                    out += self._tool_fragment(event.index, {"function": {"arguments": "{}"}})
            elif isinstance(event, MessageDelta):
                self._usage = _merged(self._start_usage, event.usage)
                if not self._finished:
                    self._finish(out, event.stop_reason)
            # ThinkingDelta, and BlockStart of text or thinking: nothing to send.
        return bytes(out)

    def done(self) -> bytes:
        """The end of a stream that went well: the usage chunk if asked for, then `[DONE]`."""
        out = bytearray()
        if not self._finished:
            self._finish(out, None)
        if self._include_usage:
            usage = _merged(self._start_usage, self._usage)
            out += self._head + b',"choices":[],"usage":' + orjson.dumps(usage_to(usage)) + b"}\n\n"
        out += DONE_FRAME
        return bytes(out)

    def error(self, error_type: str, message: str) -> bytes:
        """The in-stream error chunk (the SDK raises it as an APIError); the stream ends after it."""
        return b"data: " + orjson.dumps(error_body(message, type=error_type)) + b"\n\n"
