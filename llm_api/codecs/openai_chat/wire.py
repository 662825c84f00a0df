"""The Chat Completions request body as Pydantic-validated TypedDicts, as strict in type as the real API.

They validate (`validation.validate_request`) and document (`request_json_schema`, for the OpenAPI
document); the codec itself reads the validated plain dict, which is also what a same-vendor relay
forwards. TypedDicts rather than models: validating builds no objects (3.5x faster on a long chat).
Every object allows unknown fields (`extra="allow"`): OpenAI adds parameters faster than the gateway is
released, and a relay must forward what it does not model (`logit_bias`, `prediction`,
`prompt_cache_breakpoint`...). Open-ended unions (content parts, tools, tool calls, response formats,
tool choices) accept any other `type` as an `Other*` object, so new kinds pass validation; the decoder
refuses what it cannot translate.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    TypeAdapter,
    with_config,
)
from typing_extensions import TypedDict

# OpenAI's rule for function names; Anthropic's tool names accept the same characters.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

Temperature = Annotated[StrictFloat, Field(ge=0, le=2)]
Probability = Annotated[StrictFloat, Field(ge=0, le=1)]
Penalty = Annotated[StrictFloat, Field(ge=-2, le=2)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


# Every object allows unknown fields.
_open = with_config(ConfigDict(extra="allow"))


def _not(*known: str) -> Any:
    """An `Other*` object's `type`: any string but the known ones, so that a oneOf stays exclusive."""
    return Field(json_schema_extra={"not": {"enum": list(known)}})


def _tag(known: tuple[str, ...]) -> Any:
    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else None
        return kind if kind in known else "other"

    return Discriminator(tag)


# ---------------------------------------------------------------- content parts


@_open
class TextPart(TypedDict):
    type: Literal["text"]
    text: str


@_open
class ImageUrl(TypedDict):
    url: str
    detail: NotRequired[str | None]


@_open
class ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ImageUrl


@_open
class RefusalPart(TypedDict):
    """In an assistant message of the history."""

    type: Literal["refusal"]
    refusal: str


@_open
class OtherPart(TypedDict):
    """`input_audio`, `file` or a newer part: forwarded as is, never translated."""

    type: Annotated[str, _not("text", "image_url", "refusal")]


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[OtherPart, Tag("other")],
    _tag(("text", "image_url", "refusal")),
]
Content = str | list[ContentPart]


# ---------------------------------------------------------------- messages


@_open
class FunctionCall(TypedDict):
    name: str
    arguments: str


@_open
class FunctionToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


@_open
class OtherToolCall(TypedDict):
    """A `custom` tool call or a newer kind."""

    id: str
    type: Annotated[str, _not("function")]


ToolCallItem = Annotated[
    Annotated[FunctionToolCall, Tag("function")] | Annotated[OtherToolCall, Tag("other")],
    _tag(("function",)),
]


@_open
class SystemMessage(TypedDict):
    role: Literal["system"]
    content: Content
    name: NotRequired[str | None]


@_open
class DeveloperMessage(TypedDict):
    role: Literal["developer"]
    content: Content
    name: NotRequired[str | None]


@_open
class UserMessage(TypedDict):
    role: Literal["user"]
    content: Content
    name: NotRequired[str | None]


@_open
class AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: NotRequired[Content | None]
    refusal: NotRequired[str | None]
    tool_calls: NotRequired[list[ToolCallItem] | None]
    function_call: NotRequired[FunctionCall | None]
    name: NotRequired[str | None]


@_open
class ToolMessage(TypedDict):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


@_open
class FunctionMessage(TypedDict):
    """The deprecated `function` role: validated for relays, refused by the translator."""

    role: Literal["function"]
    content: str | None
    name: str


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


# ---------------------------------------------------------------- tools


@_open
class FunctionDefinition(TypedDict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[StrictBool | None]


@_open
class FunctionTool(TypedDict):
    type: Literal["function"]
    function: FunctionDefinition


@_open
class OtherTool(TypedDict):
    """A `custom` tool or a newer kind."""

    type: Annotated[str, _not("function")]


ToolItem = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")],
    _tag(("function",)),
]


@_open
class NamedFunction(TypedDict):
    name: str


@_open
class NamedToolChoice(TypedDict):
    type: Literal["function"]
    function: NamedFunction


@_open
class OtherToolChoice(TypedDict):
    """`allowed_tools`, a named `custom` tool, or a newer kind."""

    type: Annotated[str, _not("function")]


def _tool_choice_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "function" if value.get("type") == "function" else "other"
    return "mode"


ToolChoiceOption = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("mode")]
    | Annotated[NamedToolChoice, Tag("function")]
    | Annotated[OtherToolChoice, Tag("other")],
    Discriminator(_tool_choice_tag),
]


# ---------------------------------------------------------------- response format


@_open
class TextFormat(TypedDict):
    type: Literal["text"]


@_open
class JsonObjectFormat(TypedDict):
    type: Literal["json_object"]


@_open
class JsonSchemaSpec(TypedDict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: NotRequired[str | None]
    schema: NotRequired[dict[str, Any] | None]
    strict: NotRequired[StrictBool | None]


@_open
class JsonSchemaFormat(TypedDict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


@_open
class OtherFormat(TypedDict):
    type: Annotated[str, _not("text", "json_object", "json_schema")]


ResponseFormatItem = Annotated[
    Annotated[TextFormat, Tag("text")]
    | Annotated[JsonObjectFormat, Tag("json_object")]
    | Annotated[JsonSchemaFormat, Tag("json_schema")]
    | Annotated[OtherFormat, Tag("other")],
    _tag(("text", "json_object", "json_schema")),
]


# ---------------------------------------------------------------- the request


@_open
class StreamOptions(TypedDict):
    include_usage: NotRequired[StrictBool | None]
    include_obfuscation: NotRequired[StrictBool | None]


@_open
class ChatCompletionRequest(TypedDict):
    """`POST /v1/chat/completions`: OpenAI's Chat Completions request body."""

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: NotRequired[StrictBool | None]
    stream_options: NotRequired[StreamOptions | None]
    max_tokens: NotRequired[PositiveInt | None]
    max_completion_tokens: NotRequired[PositiveInt | None]
    temperature: NotRequired[Temperature | None]
    top_p: NotRequired[Probability | None]
    stop: NotRequired[str | list[str] | None]
    tools: NotRequired[list[ToolItem] | None]
    tool_choice: NotRequired[ToolChoiceOption | None]
    parallel_tool_calls: NotRequired[StrictBool | None]
    response_format: NotRequired[ResponseFormatItem | None]
    # A string, not an enum: OpenAI adds efforts (`xhigh`, `max`) without notice; the translator checks.
    reasoning_effort: NotRequired[str | None]
    user: NotRequired[str | None]
    n: NotRequired[Annotated[StrictInt, Field(ge=1, le=128)] | None]
    seed: NotRequired[StrictInt | None]
    logprobs: NotRequired[StrictBool | None]
    top_logprobs: NotRequired[Annotated[StrictInt, Field(ge=0, le=20)] | None]
    logit_bias: NotRequired[dict[str, StrictInt] | None]
    presence_penalty: NotRequired[Penalty | None]
    frequency_penalty: NotRequired[Penalty | None]
    metadata: NotRequired[dict[str, str] | None]
    store: NotRequired[StrictBool | None]
    service_tier: NotRequired[str | None]
    modalities: NotRequired[list[str] | None]
    prediction: NotRequired[dict[str, Any] | None]
    audio: NotRequired[dict[str, Any] | None]


# Definitions are named `OpenAI<Model>` so that they cannot collide with other formats' in one document.
DEFS_PREFIX = "OpenAI"


REQUEST = TypeAdapter(ChatCompletionRequest)


def request_json_schema(ref_prefix: str = "#/components/schemas/") -> tuple[dict[str, Any], dict[str, Any]]:
    """`ChatCompletionRequest`'s JSON schema and its definitions, with `$ref`s to `ref_prefix + name`.

    Put the definitions into the OpenAPI document's `components.schemas` and every `$ref` resolves.
    """
    schema = REQUEST.json_schema(ref_template=ref_prefix + DEFS_PREFIX + "{model}")
    defs: dict[str, Any] = {DEFS_PREFIX + name: value for name, value in schema.pop("$defs", {}).items()}
    return schema, defs
