"""A Messages request body (already validated by `validate_request`) to the neutral `Chat`.

Used when a client speaks Anthropic's format to a model behind another vendor (or to count its tokens
locally). A same-vendor request is forwarded as the client sent it and never needs this.

Decisions:
- `thinking: {"type": "enabled", "budget_tokens": N}` is `Reasoning(budget_tokens=N)`; `adaptive` is
  `Reasoning(effort=<output_config.effort>)`, `medium` (OpenAI's default) when no effort is given;
  `output_config.effort` alone (or with thinking `disabled`) is `Reasoning(effort)`; `disabled` and
  `between_tools` without an effort are no reasoning.
- `output_config.format` (structured outputs) is `ResponseFormat("json_schema")`.
- Server tools (a `type` other than `custom`: web search, code execution...) exist only on Anthropic:
  each is an unmapped parameter named `tools.<i>` (dropped and named, or refused), as `top_k` is.
- Content that the neutral model cannot hold (documents, search results, server tool blocks, file
  sources) is an `UnsupportedParameter` naming its place (`messages.3.content.0`): a 400, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast, get_args

from llm_api.chat_model import (
    EMPTY,
    Block,
    Chat,
    Image,
    Message,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from llm_api.codecs.anthropic_messages._common import make_extras
from llm_api.errors import UnsupportedParameter

Effort = Literal["minimal", "low", "medium", "high", "xhigh", "max"]
EFFORTS: frozenset[str] = frozenset(get_args(Effort))

# Top-level fields with a neutral meaning; everything else goes to Chat.unmapped.
_MAPPED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "stream",
        "metadata",
        "thinking",
        "output_config",
    }
)
_TOOL_CHOICES: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "tool": "tool",
    "none": "none",
}


def _text(block: Mapping[str, Any]) -> Text:
    return Text(str(block["text"]), make_extras(block, "text"))


def _texts(content: str | list[Mapping[str, Any]], where: str) -> tuple[Text, ...]:
    if isinstance(content, str):
        return (Text(content),) if content else ()
    blocks = []
    for i, block in enumerate(content):
        if block.get("type") != "text":
            raise _cannot_translate(f"{where}.{i}", block)
        blocks.append(_text(block))
    return tuple(blocks)


# Anthropic's block and source types that no other format takes: named in errors. Any other type is
# client input that could be anything (a prompt, even) and is never quoted.
_NAMED_TYPES = frozenset(
    {
        "document",
        "search_result",
        "container_upload",
        "tool_reference",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "file",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "tool_result",
        "image",
    }
)


def _cannot_translate(where: str, block: Mapping[str, Any]) -> UnsupportedParameter:
    kind = block.get("type")
    what = f"{kind} content" if kind in _NAMED_TYPES else "content of this type"
    return UnsupportedParameter(f"{where}: {what} cannot be translated for this model", param=where)


def _image(block: Mapping[str, Any], where: str) -> Image:
    source = block["source"]
    extras = make_extras(block, "source")
    if source.get("type") == "base64":
        return Image(media_type=source["media_type"], data=source["data"], extras=extras)
    if source.get("type") == "url":
        return Image(url=source["url"], extras=extras)
    raise _cannot_translate(f"{where}.source", source)


def _tool_result(block: Mapping[str, Any], where: str) -> ToolResult:
    content = block.get("content")
    parts: list[Text | Image] = []
    if isinstance(content, str):
        parts = [Text(content)] if content else []
    elif content:
        for i, part in enumerate(content):
            if part.get("type") == "text":
                parts.append(_text(part))
            elif part.get("type") == "image":
                parts.append(_image(part, f"{where}.content.{i}"))
            else:
                raise _cannot_translate(f"{where}.content.{i}", part)
    return ToolResult(
        tool_call_id=str(block["tool_use_id"]),
        content=tuple(parts),
        is_error=bool(block.get("is_error")),
        extras=make_extras(block, "tool_use_id", "content", "is_error"),
    )


def _block(block: Mapping[str, Any], where: str) -> Block:
    kind = block.get("type")
    if kind == "text":
        return _text(block)
    if kind == "image":
        return _image(block, where)
    if kind == "tool_use":
        return ToolCall(
            id=str(block["id"]),
            name=str(block["name"]),
            arguments=block.get("input") or EMPTY,
            extras=make_extras(block, "id", "name", "input"),
        )
    if kind == "tool_result":
        return _tool_result(block, where)
    if kind == "thinking":
        return Thinking(text=str(block["thinking"]), signature=block.get("signature") or None)
    if kind == "redacted_thinking":
        return Thinking(redacted=str(block["data"]))
    raise _cannot_translate(where, block)


def _message(message: Mapping[str, Any], where: str) -> Message:
    role = message["role"]
    content = message["content"]
    if role == "system":
        return Message("system", _texts(content, f"{where}.content"))
    if isinstance(content, str):
        return Message(role, (Text(content),))
    return Message(role, tuple(_block(block, f"{where}.content.{i}") for i, block in enumerate(content)))


def _tools(tools: list[Mapping[str, Any]], unmapped: dict[str, Any]) -> tuple[Tool, ...]:
    decoded = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            unmapped[f"tools.{i}"] = tool
            continue
        decoded.append(
            Tool(
                name=str(tool["name"]),
                description=tool.get("description"),
                parameters=tool["input_schema"],
                extras=make_extras(tool, "name", "description", "input_schema"),
            )
        )
    return tuple(decoded)


def _tool_choice(choice: Mapping[str, Any] | None) -> tuple[ToolChoice | None, bool | None]:
    if not choice:
        return None, None
    mode = _TOOL_CHOICES[choice["type"]]
    parallel = False if choice.get("disable_parallel_tool_use") else None
    return ToolChoice(mode, choice.get("name") if mode == "tool" else None), parallel


def _reasoning(body: Mapping[str, Any], unmapped: dict[str, Any]) -> Reasoning | None:
    thinking = body.get("thinking") or {}
    output = body.get("output_config") or {}
    effort = output.get("effort")
    if effort is not None and effort not in EFFORTS:
        unmapped["output_config.effort"] = effort
        effort = None
    known_effort = cast(Effort | None, effort)
    kind = thinking.get("type")
    if kind == "enabled":
        return Reasoning(effort=known_effort, budget_tokens=int(thinking["budget_tokens"]))
    if kind == "adaptive":
        return Reasoning(effort=known_effort or "medium")
    # Without thinking, an effort still says how hard to work (Anthropic applies it to the answer).
    return Reasoning(effort=known_effort) if known_effort is not None else None


def _response_format(output: Mapping[str, Any]) -> ResponseFormat | None:
    fmt = output.get("format")
    if not fmt:
        return None
    return ResponseFormat(kind="json_schema", schema=fmt["schema"])


def _unmapped_parts(body: Mapping[str, Any], unmapped: dict[str, Any]) -> None:
    """The parts of mapped objects that carry no neutral meaning (`metadata` beyond `user_id`...)."""
    for key, value in body.items():
        if key not in _MAPPED:
            unmapped[key] = value
    metadata = body.get("metadata") or {}
    if rest := {key: value for key, value in metadata.items() if key != "user_id"}:
        unmapped["metadata"] = rest
    output = body.get("output_config") or {}
    if rest := {key: value for key, value in output.items() if key not in ("effort", "format")}:
        unmapped["output_config"] = rest


def decode_request(body: Mapping[str, Any]) -> Chat:
    """The neutral chat of a validated Messages (or count_tokens) body."""
    unmapped: dict[str, Any] = {}
    _unmapped_parts(body, unmapped)
    system = body.get("system")
    tool_choice, parallel = _tool_choice(body.get("tool_choice"))
    metadata = body.get("metadata") or {}
    return Chat(
        model=str(body["model"]),
        messages=tuple(_message(m, f"messages.{i}") for i, m in enumerate(body["messages"])),
        system=_texts(system, "system") if system else (),
        tools=_tools(body.get("tools") or [], unmapped),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=tuple(body.get("stop_sequences") or ()),
        response_format=_response_format(body.get("output_config") or {}),
        reasoning=_reasoning(body, unmapped),
        user=metadata.get("user_id"),
        stream=bool(body.get("stream")),
        unmapped=unmapped or EMPTY,
    )
