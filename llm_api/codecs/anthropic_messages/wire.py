"""The Messages API request as typed dicts, for validation and the OpenAPI document only.

The gateway validates a body against these types and then works on the parsed JSON itself, so a field
the types do not know (`cache_control`, `citations`, `context_management`, `container`, ...) survives the
trip unchanged: every type allows extra fields. Values are strict (`"stream": 0` and `"max_tokens": "5"`
are refused, as the real API refuses them). Block and source unions are tagged by their `type`; a type the
gateway does not model (`document`, `server_tool_use`, ...) validates as an `OtherBlock`, so new vendor
block types pass through to Claude models without a gateway release.

TypedDicts rather than models: validating one builds no objects, about four times faster on the long
bodies Claude Code sends. Tags are spelled `@name` so that `validation.validation_details` can drop them
from error locations.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, JsonValue, Tag, with_config
from typing_extensions import TypedDict

_CONFIG = ConfigDict(extra="allow", strict=True)
MAX_NAME = 256
Json = dict[str, Any]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
NonEmpty = Annotated[str, Field(min_length=1)]
ToolName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")]


def _by(key: str, known: frozenset[str], *, fallback: bool = False) -> Discriminator:
    """Tag a union by `key`: `@<value>` for a known value; else `@other` (with a fallback) or invalid."""

    def discriminate(value: Any) -> str:
        tag = value.get(key) if isinstance(value, dict) else None
        if tag in known:
            return f"@{tag}"
        return "@other" if fallback else "@invalid"

    discriminate.__name__ = key  # pydantic names the discriminator in its error context
    return Discriminator(discriminate)


def _text_or_list(value: Any) -> str:
    return "@text" if isinstance(value, str) else "@blocks"


def _refuse(known: frozenset[str]) -> AfterValidator:
    def refuse_known(value: str) -> str:
        if value in known:
            raise ValueError("this type is not allowed here")
        return value

    return AfterValidator(refuse_known)


def _excluding(known: frozenset[str]) -> Any:
    excluded: list[JsonValue] = list(sorted(known))
    return Field(json_schema_extra={"not": {"enum": excluded}})


_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"})
_SOURCES = frozenset({"base64", "url"})
_RESULT_PARTS = frozenset({"text", "image"})
_CUSTOM = frozenset({"custom"})
# The `type` of a fallback: any string but the known ones, in the schema as in validation.
_OtherBlockType = Annotated[str, _refuse(_BLOCKS), _excluding(_BLOCKS)]
_OtherSourceType = Annotated[str, _refuse(_SOURCES), _excluding(_SOURCES)]
_ServerToolType = Annotated[str, _refuse(_CUSTOM), _excluding(_CUSTOM)]


# ---------------------------------------------------------------- content blocks


@with_config(_CONFIG)
class TextBlock(TypedDict):
    type: Literal["text"]
    text: str
    cache_control: NotRequired[Json | None]
    citations: NotRequired[list[Json] | None]


@with_config(_CONFIG)
class Base64Source(TypedDict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: NonEmpty


@with_config(_CONFIG)
class UrlSource(TypedDict):
    type: Literal["url"]
    url: NonEmpty


@with_config(_CONFIG)
class OtherSource(TypedDict):
    """A source the gateway does not model (`file`, ...): passed through to Claude models as is."""

    type: _OtherSourceType


ImageSource = Annotated[
    Annotated[Base64Source, Tag("@base64")]
    | Annotated[UrlSource, Tag("@url")]
    | Annotated[OtherSource, Tag("@other")],
    _by("type", _SOURCES, fallback=True),
]


@with_config(_CONFIG)
class ImageBlock(TypedDict):
    type: Literal["image"]
    source: ImageSource
    cache_control: NotRequired[Json | None]


@with_config(_CONFIG)
class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: NonEmpty
    name: Name
    input: Json
    cache_control: NotRequired[Json | None]


@with_config(_CONFIG)
class OtherBlock(TypedDict):
    """A block type the gateway does not model (`document`, `search_result`, server tool blocks...)."""

    type: _OtherBlockType


ToolResultPart = Annotated[
    Annotated[TextBlock, Tag("@text")]
    | Annotated[ImageBlock, Tag("@image")]
    | Annotated[OtherBlock, Tag("@other")],
    _by("type", _RESULT_PARTS, fallback=True),
]
ToolResultContent = Annotated[
    Annotated[str, Tag("@text")] | Annotated[list[ToolResultPart], Tag("@blocks")],
    Discriminator(_text_or_list),
]


@with_config(_CONFIG)
class ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: NonEmpty
    content: NotRequired[ToolResultContent | None]
    is_error: NotRequired[bool | None]
    cache_control: NotRequired[Json | None]


@with_config(_CONFIG)
class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


@with_config(_CONFIG)
class RedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("@text")]
    | Annotated[ImageBlock, Tag("@image")]
    | Annotated[ToolUseBlock, Tag("@tool_use")]
    | Annotated[ToolResultBlock, Tag("@tool_result")]
    | Annotated[ThinkingBlock, Tag("@thinking")]
    | Annotated[RedactedThinkingBlock, Tag("@redacted_thinking")]
    | Annotated[OtherBlock, Tag("@other")],
    _by("type", _BLOCKS, fallback=True),
]


@with_config(_CONFIG)
class ChatMessage(TypedDict):
    role: Literal["user", "assistant"]
    content: Annotated[
        Annotated[NonEmpty, Tag("@text")]
        | Annotated[list[ContentBlock], Field(min_length=1), Tag("@blocks")],
        Discriminator(_text_or_list),
    ]


@with_config(_CONFIG)
class SystemMessage(TypedDict):
    """A mid-conversation system message (Claude Code sends them to non-Claude models): text only."""

    role: Literal["system"]
    content: Annotated[
        Annotated[NonEmpty, Tag("@text")] | Annotated[list[TextBlock], Field(min_length=1), Tag("@blocks")],
        Discriminator(_text_or_list),
    ]


Message = Annotated[
    Annotated[ChatMessage, Tag("@user")]
    | Annotated[ChatMessage, Tag("@assistant")]
    | Annotated[SystemMessage, Tag("@system")],
    _by("role", frozenset({"user", "assistant", "system"})),
]


# ---------------------------------------------------------------- tools and options


@with_config(_CONFIG)
class InputSchema(TypedDict):
    type: Literal["object"]


@with_config(_CONFIG)
class CustomTool(TypedDict):
    """A client tool: the model calls it with an `input` matching `input_schema`."""

    type: NotRequired[Literal["custom"] | None]
    name: ToolName
    description: NotRequired[str | None]
    input_schema: InputSchema
    cache_control: NotRequired[Json | None]


@with_config(_CONFIG)
class ServerTool(TypedDict):
    """A tool Anthropic defines (`web_search_20250305`, `bash_20250124`...): passed through to Claude."""

    type: _ServerToolType
    name: Name


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else None
    return "@custom" if kind in (None, "custom") else "@server"


Tool = Annotated[
    Annotated[CustomTool, Tag("@custom")] | Annotated[ServerTool, Tag("@server")],
    Discriminator(_tool_kind),
]


@with_config(_CONFIG)
class ToolChoiceAuto(TypedDict):
    type: Literal["auto"]
    disable_parallel_tool_use: NotRequired[bool | None]


@with_config(_CONFIG)
class ToolChoiceAny(TypedDict):
    type: Literal["any"]
    disable_parallel_tool_use: NotRequired[bool | None]


@with_config(_CONFIG)
class ToolChoiceTool(TypedDict):
    type: Literal["tool"]
    name: Name
    disable_parallel_tool_use: NotRequired[bool | None]


@with_config(_CONFIG)
class ToolChoiceNone(TypedDict):
    type: Literal["none"]


ToolChoice = Annotated[
    Annotated[ToolChoiceAuto, Tag("@auto")]
    | Annotated[ToolChoiceAny, Tag("@any")]
    | Annotated[ToolChoiceTool, Tag("@tool")]
    | Annotated[ToolChoiceNone, Tag("@none")],
    _by("type", frozenset({"auto", "any", "tool", "none"})),
]


@with_config(_CONFIG)
class ThinkingEnabled(TypedDict):
    type: Literal["enabled"]
    budget_tokens: Annotated[int, Field(ge=1024)]
    display: NotRequired[str | None]


@with_config(_CONFIG)
class ThinkingAdaptive(TypedDict):
    type: Literal["adaptive"]
    display: NotRequired[str | None]


@with_config(_CONFIG)
class ThinkingDisabled(TypedDict):
    type: Literal["disabled"]


@with_config(_CONFIG)
class ThinkingBetweenTools(TypedDict):
    type: Literal["between_tools"]


ThinkingConfig = Annotated[
    Annotated[ThinkingEnabled, Tag("@enabled")]
    | Annotated[ThinkingAdaptive, Tag("@adaptive")]
    | Annotated[ThinkingDisabled, Tag("@disabled")]
    | Annotated[ThinkingBetweenTools, Tag("@between_tools")],
    _by("type", frozenset({"enabled", "adaptive", "disabled", "between_tools"})),
]


@with_config(_CONFIG)
class JsonOutputFormat(TypedDict):
    type: Literal["json_schema"]
    schema: Json


@with_config(_CONFIG)
class OutputConfig(TypedDict):
    # A string, not an enumeration: a new effort level must reach Claude models without a gateway release.
    effort: NotRequired[str | None]
    format: NotRequired[JsonOutputFormat | None]


@with_config(_CONFIG)
class Metadata(TypedDict):
    user_id: NotRequired[str | None]


SystemPrompt = Annotated[
    Annotated[str, Tag("@text")] | Annotated[list[TextBlock], Tag("@blocks")],
    Discriminator(_text_or_list),
]


# ---------------------------------------------------------------- requests


@with_config(_CONFIG)
class CountTokensRequest(TypedDict):
    """`POST /v1/messages/count_tokens`: a Messages request without `max_tokens` and sampling."""

    model: Name
    messages: Annotated[list[Message], Field(min_length=1)]
    system: NotRequired[SystemPrompt | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    thinking: NotRequired[ThinkingConfig | None]
    output_config: NotRequired[OutputConfig | None]


@with_config(_CONFIG)
class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`."""

    max_tokens: Annotated[int, Field(ge=0)]
    stop_sequences: NotRequired[list[str] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0.0, le=1.0)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0.0, le=1.0)] | None]
    top_k: NotRequired[Annotated[int, Field(ge=0)] | None]
    stream: NotRequired[bool | None]
    metadata: NotRequired[Metadata | None]
