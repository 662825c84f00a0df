"""Pydantic models of the Messages API request, for validation and the OpenAPI document only.

The gateway validates a body with these models and then works on the parsed JSON itself, so a field the
models do not know (`cache_control`, `citations`, `context_management`, `container`, ...) survives the
trip unchanged: every model allows extra fields. Values are strict (`"stream": 0` and `"max_tokens": "5"`
are refused, as the real API refuses them). Block and source unions are tagged by their `type`; a type the
gateway does not model (`document`, `server_tool_use`, ...) validates as an `OtherBlock`, so new vendor
block types pass through to Claude models without a gateway release.

Tags are spelled `@name` so that `validation.validation_details` can drop them from error locations.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag, field_validator

_CONFIG = ConfigDict(extra="allow", strict=True)
MAX_NAME = 256
Json = dict[str, Any]


def _by(key: str, known: frozenset[str], *, fallback: bool = False) -> Discriminator:
    """Tag a union by `key`: `@<value>` for a known value; else `@other` (with a fallback) or invalid."""

    def discriminate(value: Any) -> str:
        tag = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if tag in known:
            return f"@{tag}"
        return "@other" if fallback else "@invalid"

    discriminate.__name__ = key  # pydantic names the discriminator in its error context
    return Discriminator(discriminate)


def _text_or_list(value: Any) -> str:
    return "@text" if isinstance(value, str) else "@blocks"


class _Wire(BaseModel):
    model_config = _CONFIG


def _other_type(known: frozenset[str]) -> Any:
    """The `type` of a fallback model: any string but the known ones (in the schema as well)."""
    excluded: list[JsonValue] = list(sorted(known))
    return Field(json_schema_extra={"not": {"enum": excluded}})


def _refuse_known(value: str, known: frozenset[str]) -> str:
    if value in known:
        raise ValueError("this type is not allowed here")
    return value


_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"})
_SOURCES = frozenset({"base64", "url"})
_RESULT_PARTS = frozenset({"text", "image"})


# ---------------------------------------------------------------- content blocks


class TextBlock(_Wire):
    type: Literal["text"]
    text: str
    cache_control: Json | None = None
    citations: list[Json] | None = None


class Base64Source(_Wire):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class UrlSource(_Wire):
    type: Literal["url"]
    url: str = Field(min_length=1)


class OtherSource(_Wire):
    """A source the gateway does not model (`file`, ...): passed through to Claude models as is."""

    type: str = _other_type(_SOURCES)

    @field_validator("type")
    @classmethod
    def _unknown(cls, value: str) -> str:
        return _refuse_known(value, _SOURCES)


ImageSource = Annotated[
    Annotated[Base64Source, Tag("@base64")]
    | Annotated[UrlSource, Tag("@url")]
    | Annotated[OtherSource, Tag("@other")],
    _by("type", _SOURCES, fallback=True),
]


class ImageBlock(_Wire):
    type: Literal["image"]
    source: ImageSource
    cache_control: Json | None = None


class ToolUseBlock(_Wire):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    input: Json
    cache_control: Json | None = None


class OtherBlock(_Wire):
    """A block type the gateway does not model (`document`, `search_result`, server tool blocks...)."""

    type: str = _other_type(_BLOCKS)

    @field_validator("type")
    @classmethod
    def _unknown(cls, value: str) -> str:
        return _refuse_known(value, _BLOCKS)


ToolResultPart = Annotated[
    Annotated[TextBlock, Tag("@text")]
    | Annotated[ImageBlock, Tag("@image")]
    | Annotated[OtherBlock, Tag("@other")],
    _by("type", _RESULT_PARTS, fallback=True),
]


class ToolResultBlock(_Wire):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: (
        Annotated[
            Annotated[str, Tag("@text")] | Annotated[list[ToolResultPart], Tag("@blocks")],
            Discriminator(_text_or_list),
        ]
        | None
    ) = None
    is_error: bool | None = None
    cache_control: Json | None = None


class ThinkingBlock(_Wire):
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Wire):
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


class ChatMessage(_Wire):
    role: Literal["user", "assistant"]
    content: Annotated[
        Annotated[str, Field(min_length=1), Tag("@text")]
        | Annotated[list[ContentBlock], Field(min_length=1), Tag("@blocks")],
        Discriminator(_text_or_list),
    ]


class SystemMessage(_Wire):
    """A mid-conversation system message (Claude Code sends them to non-Claude models): text only."""

    role: Literal["system"]
    content: Annotated[
        Annotated[str, Field(min_length=1), Tag("@text")]
        | Annotated[list[TextBlock], Field(min_length=1), Tag("@blocks")],
        Discriminator(_text_or_list),
    ]


Message = Annotated[
    Annotated[ChatMessage, Tag("@user")]
    | Annotated[ChatMessage, Tag("@assistant")]
    | Annotated[SystemMessage, Tag("@system")],
    _by("role", frozenset({"user", "assistant", "system"})),
]


# ---------------------------------------------------------------- tools and options


class InputSchema(_Wire):
    type: Literal["object"]


class CustomTool(_Wire):
    """A client tool: the model calls it with an `input` matching `input_schema`."""

    type: Literal["custom"] | None = None
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str | None = None
    input_schema: InputSchema
    cache_control: Json | None = None


class ServerTool(_Wire):
    """A tool Anthropic defines (`web_search_20250305`, `bash_20250124`...): passed through to Claude."""

    type: str = _other_type(frozenset({"custom"}))
    name: str = Field(min_length=1, max_length=MAX_NAME)

    @field_validator("type")
    @classmethod
    def _not_custom(cls, value: str) -> str:
        return _refuse_known(value, frozenset({"custom"}))


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "@custom" if kind in (None, "custom") else "@server"


Tool = Annotated[
    Annotated[CustomTool, Tag("@custom")] | Annotated[ServerTool, Tag("@server")],
    Discriminator(_tool_kind),
]


class ToolChoiceAuto(_Wire):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Wire):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Wire):
    type: Literal["tool"]
    name: str = Field(min_length=1, max_length=MAX_NAME)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Wire):
    type: Literal["none"]


ToolChoice = Annotated[
    Annotated[ToolChoiceAuto, Tag("@auto")]
    | Annotated[ToolChoiceAny, Tag("@any")]
    | Annotated[ToolChoiceTool, Tag("@tool")]
    | Annotated[ToolChoiceNone, Tag("@none")],
    _by("type", frozenset({"auto", "any", "tool", "none"})),
]


class ThinkingEnabled(_Wire):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1024)
    display: str | None = None


class ThinkingAdaptive(_Wire):
    type: Literal["adaptive"]
    display: str | None = None


class ThinkingDisabled(_Wire):
    type: Literal["disabled"]


class ThinkingBetweenTools(_Wire):
    type: Literal["between_tools"]


ThinkingConfig = Annotated[
    Annotated[ThinkingEnabled, Tag("@enabled")]
    | Annotated[ThinkingAdaptive, Tag("@adaptive")]
    | Annotated[ThinkingDisabled, Tag("@disabled")]
    | Annotated[ThinkingBetweenTools, Tag("@between_tools")],
    _by("type", frozenset({"enabled", "adaptive", "disabled", "between_tools"})),
]


class JsonOutputFormat(_Wire):
    type: Literal["json_schema"]
    schema_: Json = Field(alias="schema")


class OutputConfig(_Wire):
    # A string, not an enumeration: a new effort level must reach Claude models without a gateway release.
    effort: str | None = None
    format: JsonOutputFormat | None = None


class Metadata(_Wire):
    user_id: str | None = None


# ---------------------------------------------------------------- requests


class CountTokensRequest(_Wire):
    """`POST /v1/messages/count_tokens`: a Messages request without `max_tokens` and sampling."""

    model: str = Field(min_length=1, max_length=MAX_NAME)
    messages: list[Message] = Field(min_length=1)
    system: (
        Annotated[
            Annotated[str, Tag("@text")] | Annotated[list[TextBlock], Tag("@blocks")],
            Discriminator(_text_or_list),
        ]
        | None
    ) = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`."""

    max_tokens: int = Field(ge=0)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool | None = None
    metadata: Metadata | None = None
