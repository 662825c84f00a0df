"""A validated Chat Completions body → the neutral `Chat` (for a model of another vendor).

Decisions:
- System and developer messages before the first other message become `Chat.system`; later ones stay
  in place as `Message(role="system")`.
- Consecutive `tool` messages become ONE user message of `ToolResult` blocks; a user message right after
  them joins that turn, after the results (Anthropic's shape: results first, then the user's text).
- An empty text (`"content": ""`) makes no block, unless the message would be left with no content.
- Top-level parameters with no neutral meaning go to `Chat.unmapped`, even harmless values (`n: 1`,
  penalties of 0): the caller decides what is harmless for the target. A `null` value counts as absent.
- What cannot be translated (audio or file parts, custom tools, the legacy `function` role, images that
  are not jpeg/png/gif/webp as data: or http(s) URLs, tool-call arguments that are not a JSON object) is
  an `UnsupportedParameter` (400) whose `param` names the field, never echoing the client's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from llm_api.chat_model import (
    Block,
    Chat,
    Image,
    Message,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from llm_api.codecs.openai_chat._common import make_extras, parse_arguments
from llm_api.errors import UnsupportedParameter

# The top-level fields that the neutral `Chat` represents; every other one goes to `Chat.unmapped`.
MAPPED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
    }
)
# Unmapped parameters at these values ask for nothing beyond the default: a caller may drop them
# silently instead of naming them (see `is_default`).
DEFAULT_VALUES: Mapping[str, Any] = MappingProxyType(
    {"n": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "top_logprobs": 0}
)
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
EFFORTS = frozenset({"minimal", "low", "medium", "high", "xhigh", "max"})
# Part types worth naming in an error: OpenAI's own. Another `type` is the client's text, never echoed.
NAMED_PART_TYPES = frozenset({"input_audio", "file", "refusal", "text", "image_url"})

_TEXT_PART = frozenset({"type", "text"})
_MESSAGE = frozenset({"role", "content", "tool_calls", "tool_call_id", "refusal"})


def _unsupported(param: str, what: str) -> UnsupportedParameter:
    return UnsupportedParameter(f"{param}: {what}", param=param)


def _part_kind(part: Mapping[str, Any]) -> str:
    kind = part.get("type")
    return f"'{kind}' parts" if kind in NAMED_PART_TYPES else "this kind of part"


def _image(part: Mapping[str, Any], where: str) -> Image:
    image_url = part["image_url"]
    url: str = image_url["url"]
    rest = {key: value for key, value in part.items() if key not in ("type", "image_url")}
    detail = {key: value for key, value in image_url.items() if key != "url"}
    if detail:
        rest["image_url"] = detail
    extras = make_extras(rest, frozenset())
    where = f"{where}.image_url"
    if url[:5].lower() == "data:":
        comma = url.find(",")
        header = url[5:comma].split(";") if comma > 0 else []
        media_type = header[0].strip().lower() if header else ""
        if "base64" not in header[1:] or media_type not in IMAGE_MEDIA_TYPES:
            raise _unsupported(
                where, "only base64 data: URLs of image/jpeg, image/png, image/gif or image/webp can be sent"
            )
        return Image(media_type=media_type, data=url[comma + 1 :], extras=extras)
    if url.split(":", 1)[0].lower() in ("http", "https"):
        return Image(url=url, extras=extras)
    raise _unsupported(where, "an image must be an http(s) URL or a base64 data: URL")


def _blocks(content: Any, where: str, *, images: bool, refusals: bool = False) -> list[Text | Image]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content else []
    blocks: list[Text | Image] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" or (refusals and kind == "refusal"):
            text = part["text"] if kind == "text" else part["refusal"]
            if text:
                blocks.append(Text(text, extras=make_extras(part, _TEXT_PART | {"refusal"})))
        elif kind == "image_url" and images:
            blocks.append(_image(part, f"{where}.content[{j}]"))
        else:
            raise _unsupported(f"{where}.content[{j}]", f"{_part_kind(part)} cannot be translated here")
    return blocks


def _non_empty(blocks: Sequence[Block]) -> tuple[Block, ...]:
    return tuple(blocks) or (Text(""),)


def _tool_call(call: Mapping[str, Any], where: str) -> ToolCall:
    if call.get("type") != "function":
        raise _unsupported(where, "only function tool calls can be translated")
    function = call["function"]
    arguments = parse_arguments(function["arguments"])
    if arguments is None:
        raise _unsupported(f"{where}.function.arguments", "the arguments must be a JSON object")
    return ToolCall(
        id=call["id"],
        name=function["name"],
        arguments=arguments,
        extras=make_extras(call, frozenset({"id", "type", "function"})),
    )


def _assistant(message: Mapping[str, Any], where: str) -> Message:
    if message.get("function_call") is not None:
        raise _unsupported(f"{where}.function_call", "legacy function calls cannot be translated; use tools")
    blocks: list[Block] = list(_blocks(message.get("content"), where, images=False, refusals=True))
    if message.get("refusal"):
        blocks.append(Text(message["refusal"]))
    blocks.extend(
        _tool_call(call, f"{where}.tool_calls[{k}]") for k, call in enumerate(message.get("tool_calls") or ())
    )
    return Message("assistant", _non_empty(blocks), extras=make_extras(message, _MESSAGE))


def _messages(messages: Sequence[Mapping[str, Any]]) -> tuple[tuple[Text, ...], tuple[Message, ...]]:
    system: list[Text] = []
    out: list[Message] = []
    results: list[ToolResult] = []  # tool messages in a row, waiting for their user turn

    def flush_results() -> None:
        if results:
            out.append(Message("user", tuple(results)))
            results.clear()

    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message["role"]
        extras = make_extras(message, _MESSAGE)
        if role in ("system", "developer"):
            texts = _non_empty(_blocks(message["content"], where, images=False))
            if not out and not results:
                system.extend(block for block in texts if isinstance(block, Text))
            else:
                flush_results()
                out.append(Message("system", texts, extras=extras))
        elif role == "tool":
            content = tuple(_blocks(message["content"], where, images=True))
            results.append(ToolResult(message["tool_call_id"], content, extras=extras))
        elif role == "user":
            blocks = _blocks(message["content"], where, images=True)
            if results:
                # Even an empty user message is kept (as an empty text): it was a message of its own.
                out.append(Message("user", (*results, *(blocks or [Text("")])), extras=extras))
                results.clear()
            else:
                out.append(Message("user", _non_empty(blocks), extras=extras))
        elif role == "assistant":
            flush_results()
            out.append(_assistant(message, where))
        else:
            raise _unsupported(f"{where}.role", "the legacy 'function' role cannot be translated; use tools")
    flush_results()
    return tuple(system), tuple(out)


def _tools(tools: Sequence[Mapping[str, Any]]) -> tuple[Tool, ...]:
    decoded: list[Tool] = []
    for k, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _unsupported(f"tools[{k}]", "only function tools can be translated")
        function = tool["function"]
        parameters = function.get("parameters")
        extras = make_extras(function, frozenset({"name", "description", "parameters"}))
        decoded.append(
            Tool(
                name=function["name"],
                description=function.get("description"),
                parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
                extras=extras,
            )
        )
    return tuple(decoded)


def _tool_choice(choice: Any) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return ToolChoice(mode=choice)  # type: ignore[arg-type]  # validated: none, auto or required
    if choice.get("type") == "function":
        return ToolChoice(mode="tool", name=choice["function"]["name"])
    raise _unsupported("tool_choice", "only none, auto, required or a named function can be translated")


def _response_format(value: Mapping[str, Any] | None) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind=kind)
    if kind == "json_schema":
        spec = value["json_schema"]
        return ResponseFormat(
            kind="json_schema", schema=spec.get("schema"), name=spec.get("name"), strict=spec.get("strict")
        )
    raise _unsupported("response_format", "only text, json_object or json_schema can be translated")


def _reasoning(effort: str | None) -> Reasoning | None:
    if effort is None or effort == "none":
        return None
    if effort not in EFFORTS:
        raise _unsupported("reasoning_effort", "this reasoning effort cannot be translated")
    return Reasoning(effort=effort)  # type: ignore[arg-type]  # one of EFFORTS


def is_default(name: str, value: Any) -> bool:
    """Whether an unmapped parameter's value is OpenAI's default (`n: 1`, a penalty of 0...)."""
    if name not in DEFAULT_VALUES:
        return False
    default = DEFAULT_VALUES[name]
    return value == default and isinstance(value, bool) == isinstance(default, bool)


def decode_request(body: Mapping[str, Any]) -> Chat:
    """A body that `validate_request` accepted → the neutral chat; raises `UnsupportedParameter`."""
    system, messages = _messages(body["messages"])
    max_tokens = body.get("max_completion_tokens")
    stop = body.get("stop")
    stream_options = body.get("stream_options") or {}
    temperature, top_p = body.get("temperature"), body.get("top_p")
    return Chat(
        model=body["model"],
        messages=messages,
        system=system,
        tools=_tools(body.get("tools") or ()),
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        max_tokens=max_tokens if max_tokens is not None else body.get("max_tokens"),
        temperature=float(temperature) if temperature is not None else None,
        top_p=float(top_p) if top_p is not None else None,
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        response_format=_response_format(body.get("response_format")),
        reasoning=_reasoning(body.get("reasoning_effort")),
        user=body.get("user"),
        stream=bool(body.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        unmapped={
            key: value for key, value in body.items() if key not in MAPPED_FIELDS and value is not None
        },
    )
