"""The provider-neutral chat: what every wire format's codec converts to and from.

One request (`Chat`), one answer (`ChatResult`), and one stream of `StreamEvent`s. Each wire format
(OpenAI Chat Completions, Anthropic Messages, the gateway's own `/v1/chat`) has one codec module in
`llm_api.codecs` that decodes its JSON into these types and encodes these types into its JSON, used both by
the endpoint that accepts the format and by the adapter that sends it.

Conventions:
- Tool results are `ToolResult` blocks inside a `user` message (Anthropic's shape); the OpenAI codec maps
  `role: "tool"` messages to and from them.
- System text that comes first is `Chat.system`; a `system` message later in `messages` is a
  mid-conversation system message (Claude Code sends them) and stays where it is.
- `Usage.input_tokens` is the UNCACHED input (Anthropic's meaning); the prompt's total is
  `input_tokens + cache_read_tokens + cache_write_tokens` (OpenAI's `prompt_tokens`).
- `extras` bags carry the source format's fields that the neutral model does not represent but that the
  same format can carry back (`cache_control` on a block, say). A codec encoding its own format may emit
  them; a codec encoding another format ignores them.
- `Chat.unmapped` holds the request's top-level parameters that have no neutral equivalent (`n`, `seed`,
  `logprobs`, `top_k`…): an encoder for another format drops them and names them (X-LLM-Dropped-Params),
  or the service refuses them with DROP_UNSUPPORTED_PARAMS=false.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


class _Empty(Mapping[str, Any]):
    """An immutable empty mapping that is hashable: Python 3.11's dataclasses refuse an unhashable
    default (a MappingProxyType) as "mutable"."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


EMPTY: Mapping[str, Any] = _Empty()

Role = Literal["system", "user", "assistant"]
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


# ---------------------------------------------------------------- content blocks


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    extras: Mapping[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class Image:
    """Either inline base64 `data` with its `media_type`, or a `url` (http/https)."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    extras: Mapping[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool: `arguments` is the parsed JSON object."""

    id: str
    name: str
    arguments: Mapping[str, Any] = EMPTY
    extras: Mapping[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_call_id: str
    content: tuple[Text | Image, ...] = ()
    is_error: bool = False
    extras: Mapping[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class Thinking:
    """Reasoning text with its signature; `redacted` holds an encrypted (redacted_thinking) block's data."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    extras: Mapping[str, Any] = EMPTY


Block = Text | Image | ToolCall | ToolResult | Thinking


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: tuple[Block, ...]
    extras: Mapping[str, Any] = EMPTY


# ---------------------------------------------------------------- request


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    extras: Mapping[str, Any] = EMPTY


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Reasoning:
    """How hard the model should think: an OpenAI-style effort, an Anthropic-style token budget, or both."""

    effort: Literal["minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    budget_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Chat:
    """One chat request, whatever format it came in."""

    model: str
    messages: tuple[Message, ...]
    system: tuple[Text, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    user: str | None = None
    stream: bool = False
    # Streams only: did the client ask for the usage (OpenAI's stream_options.include_usage)?
    include_usage: bool = False
    unmapped: Mapping[str, Any] = EMPTY


# ---------------------------------------------------------------- answer


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Every input token, cached or not (OpenAI's `prompt_tokens`)."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    id: str
    model: str
    content: tuple[Block, ...]
    stop_reason: StopReason | None
    usage: Usage
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(block.text for block in self.content if isinstance(block, Text))


# ---------------------------------------------------------------- stream
# A stream is: MessageStart, then for each block BlockStart, its deltas, BlockStop (indexes 0..n in
# order, one block open at a time), then one MessageDelta (stop reason, final usage). Adapters yield
# them in `EventBatch`es: the events that arrived in one upstream read, so that a relay can write them
# in one socket write.


@dataclass(frozen=True, slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage = Usage()


@dataclass(frozen=True, slots=True)
class BlockStart:
    """`block` is an empty Text, a ToolCall with id and name (no arguments yet), or an empty Thinking."""

    index: int
    block: Text | ToolCall | Thinking


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ToolArgumentsDelta:
    """A piece of a tool call's JSON arguments (the pieces concatenate to the JSON text)."""

    index: int
    partial_json: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    index: int
    text: str = ""
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class BlockStop:
    index: int


@dataclass(frozen=True, slots=True)
class MessageDelta:
    stop_reason: StopReason | None
    usage: Usage
    stop_sequence: str | None = None


StreamEvent = (
    MessageStart | BlockStart | TextDelta | ToolArgumentsDelta | ThinkingDelta | BlockStop | MessageDelta
)


@dataclass(frozen=True, slots=True)
class EventBatch:
    events: tuple[StreamEvent, ...]
