"""Pydantic models of the Chat Completions request body, as strict in type as the real API.

They validate (`validation.validate_request`) and document (`request_json_schema`, for the OpenAPI
document); the codec itself reads the validated plain dict, which is also what a same-vendor relay
forwards. Every object allows unknown fields (`extra="allow"`): OpenAI adds parameters faster than the
gateway is released, and a relay must forward what it does not model (`logit_bias`, `prediction`,
`prompt_cache_breakpoint`...). Open-ended unions (content parts, tools, tool calls, response formats,
tool choices) accept any other `type` as an `Other*` object, so new kinds pass validation; the decoder
refuses what it cannot translate.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, Tag

# OpenAI's rule for function names; Anthropic's tool names accept the same characters.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"

Temperature = Annotated[StrictFloat, Field(ge=0, le=2)]
Probability = Annotated[StrictFloat, Field(ge=0, le=1)]
Penalty = Annotated[StrictFloat, Field(ge=-2, le=2)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def _other_type(*known: str) -> Any:
    """An `Other*` object's `type`: any string but the known ones, so that a oneOf stays exclusive."""
    return Field(json_schema_extra={"not": {"enum": list(known)}})


def _tag(known: tuple[str, ...]) -> Any:
    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return kind if kind in known else "other"

    return Discriminator(tag)


# ---------------------------------------------------------------- content parts


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageUrl(_Open):
    url: str
    detail: str | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageUrl


class OtherPart(_Open):
    """`input_audio`, `file`, `refusal` or a newer part: forwarded as is, never translated."""

    type: str = _other_type("text", "image_url")


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[OtherPart, Tag("other")],
    _tag(("text", "image_url")),
]
Content = str | list[ContentPart]


# ---------------------------------------------------------------- messages


class FunctionCall(_Open):
    name: str
    arguments: str


class FunctionToolCall(_Open):
    id: str
    type: Literal["function"]
    function: FunctionCall


class OtherToolCall(_Open):
    """A `custom` tool call or a newer kind."""

    id: str
    type: str = _other_type("function")


ToolCallItem = Annotated[
    Annotated[FunctionToolCall, Tag("function")] | Annotated[OtherToolCall, Tag("other")],
    _tag(("function",)),
]


class SystemMessage(_Open):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(_Open):
    role: Literal["developer"]
    content: Content
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: Content | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallItem] | None = None
    function_call: FunctionCall | None = None
    name: str | None = None


class ToolMessage(_Open):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


class FunctionMessage(_Open):
    """The deprecated `function` role: validated for relays, refused by the translator."""

    role: Literal["function"]
    content: str | None
    name: str


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


# ---------------------------------------------------------------- tools


class FunctionDefinition(_Open):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class FunctionTool(_Open):
    type: Literal["function"]
    function: FunctionDefinition


class OtherTool(_Open):
    """A `custom` tool or a newer kind."""

    type: str = _other_type("function")


ToolItem = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")],
    _tag(("function",)),
]


class NamedFunction(_Open):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: NamedFunction


class OtherToolChoice(_Open):
    """`allowed_tools`, a named `custom` tool, or a newer kind."""

    type: str = _other_type("function")


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


class TextFormat(_Open):
    type: Literal["text"]


class JsonObjectFormat(_Open):
    type: Literal["json_object"]


class JsonSchemaSpec(_Open):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None


class JsonSchemaFormat(_Open):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


class OtherFormat(_Open):
    type: str = _other_type("text", "json_object", "json_schema")


ResponseFormatItem = Annotated[
    Annotated[TextFormat, Tag("text")]
    | Annotated[JsonObjectFormat, Tag("json_object")]
    | Annotated[JsonSchemaFormat, Tag("json_schema")]
    | Annotated[OtherFormat, Tag("other")],
    _tag(("text", "json_object", "json_schema")),
]


# ---------------------------------------------------------------- the request


class StreamOptions(_Open):
    include_usage: StrictBool | None = None
    include_obfuscation: StrictBool | None = None


class ChatCompletionRequest(_Open):
    """`POST /v1/chat/completions`: OpenAI's Chat Completions request body."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    stop: str | list[str] | None = None
    tools: list[ToolItem] | None = None
    tool_choice: ToolChoiceOption | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: ResponseFormatItem | None = None
    # A string, not an enum: OpenAI adds efforts (`xhigh`, `max`) without notice; the translator checks.
    reasoning_effort: str | None = None
    user: str | None = None
    n: Annotated[StrictInt, Field(ge=1, le=128)] | None = None
    seed: StrictInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    logit_bias: dict[str, StrictInt] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    metadata: dict[str, str] | None = None
    store: StrictBool | None = None
    service_tier: str | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None


# Definitions are named `OpenAI<Model>` so that they cannot collide with other formats' in one document.
DEFS_PREFIX = "OpenAI"


def request_json_schema(ref_prefix: str = "#/components/schemas/") -> tuple[dict[str, Any], dict[str, Any]]:
    """`ChatCompletionRequest`'s JSON schema and its definitions, with `$ref`s to `ref_prefix + name`.

    Put the definitions into the OpenAPI document's `components.schemas` and every `$ref` resolves.
    """
    schema = ChatCompletionRequest.model_json_schema(ref_template=ref_prefix + DEFS_PREFIX + "{model}")
    defs: dict[str, Any] = {DEFS_PREFIX + name: value for name, value in schema.pop("$defs", {}).items()}
    return schema, defs
