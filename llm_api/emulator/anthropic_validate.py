"""Validation of Messages API bodies, with the real API's 400 messages where we know them."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from llm_api.emulator.catalogue import ModelEntry, find_model
from llm_api.emulator.images import MEDIA_TYPES, decode_base64, is_http_url, sniff

# Models released after Claude Opus 4.6: sampling parameters are rejected outright.
NO_SAMPLING_PARAMS_MODELS: tuple[str, ...] = (
    "claude-opus-4-7*",
    "claude-opus-4-8*",
    "claude-opus-5*",
    "claude-sonnet-5*",
    "claude-fable-5*",
)
SAMPLING_PARAMS: tuple[str, ...] = ("temperature", "top_p")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_THINKING_TYPES = ("enabled", "adaptive", "disabled")
_MEDIA_LIST = "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"


def rejects_sampling_params(model: str) -> bool:
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in NO_SAMPLING_PARAMS_MODELS)


def _image(block: dict[str, Any], where: str) -> str | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return f"{where}.source: Field required"
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in MEDIA_TYPES:
            return f"{where}.source.base64.media_type: Input should be {_MEDIA_LIST}"
        data = source.get("data")
        if not isinstance(data, str) or not data:
            return f"{where}.source.base64.data: Field required"
        raw = decode_base64(data)
        if raw is None:
            return f"{where}.source.base64.data: Invalid base64 data"
        actual = sniff(raw)
        if actual is None:
            return f"{where}.source.base64.data: Could not process image"
        if actual != media_type:
            return (
                f"{where}.source.base64.data: The image was specified using the {media_type} media "
                f"type, but the image appears to be a {actual} image"
            )
        return None
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not is_http_url(url):
            return f"{where}.source.url.url: Input should be a valid URL"
        return None
    if kind == "file":
        return (
            None if isinstance(source.get("file_id"), str) else f"{where}.source.file.file_id: Field required"
        )
    return (
        f"{where}.source: Input tag '{kind}' found using 'type' does not match any of the "
        "expected tags: 'base64', 'url', 'file'"
    )


def _block(block: Any, where: str, role: str) -> str | None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return f"{where}: Input should be a valid dictionary or object to extract fields from"
    kind = block["type"]
    if kind == "text":
        if not isinstance(block.get("text"), str):
            return f"{where}.text: Field required"
        if not block["text"]:
            return "messages: text content blocks must be non-empty"
    elif kind == "image":
        return _image(block, f"{where}.image")
    elif kind == "tool_use":
        for name, types in (("id", str), ("name", str), ("input", dict)):
            if not isinstance(block.get(name), types):
                return f"{where}.tool_use.{name}: Field required"
    elif kind == "tool_result":
        if role != "user":
            return f"{where}: tool_result blocks are only allowed in user messages"
        if not isinstance(block.get("tool_use_id"), str):
            return f"{where}.tool_result.tool_use_id: Field required"
        content = block.get("content")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                problem = _block(inner, f"{where}.tool_result.content.{k}", "user")
                if problem:
                    return problem
        elif content is not None and not isinstance(content, str):
            return f"{where}.tool_result.content: Input should be a valid string or list"
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str):
            return f"{where}.thinking.thinking: Field required"
        if not isinstance(block.get("signature"), str) or not block["signature"]:
            return f"{where}.thinking.signature: Field required"
    elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        return f"{where}.redacted_thinking.data: Field required"
    return None


def _content(content: Any, where: str, role: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a valid list"
    for j, block in enumerate(content):
        problem = _block(block, f"{where}.{j}", role)
        if problem:
            return problem
    return None


def _ids(content: Any, kind: str, key: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [b[key] for b in content if isinstance(b, dict) and b.get("type") == kind and key in b]


def _tool_turns(messages: list[dict[str, Any]]) -> str | None:
    """Every tool_use is answered by a tool_result in the next message, and only those."""
    for i, message in enumerate(messages):
        content = message["content"]
        if message["role"] == "user" and isinstance(content, list):
            previous = messages[i - 1] if i > 0 else None
            known = (
                _ids(previous["content"], "tool_use", "id")
                if previous and previous["role"] == "assistant"
                else []
            )
            for j, block in enumerate(content):
                is_result = isinstance(block, dict) and block.get("type") == "tool_result"
                if is_result and block["tool_use_id"] not in known:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {block['tool_use_id']}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
        if message["role"] == "assistant" and i + 1 < len(messages):
            used = _ids(content, "tool_use", "id")
            answered = set(_ids(messages[i + 1]["content"], "tool_result", "tool_use_id"))
            missing = [tool_id for tool_id in used if tool_id not in answered]
            if missing:
                return (
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
    return None


def _messages(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        role = message.get("role")
        if role == "system":
            return (
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a '
                'top-level `system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"messages.{i}.content: Field required"
        content = message["content"]
        last_assistant = i == len(messages) - 1 and role == "assistant"
        if content in ("", []) and not last_assistant:
            return (
                f"messages.{i}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        problem = _content(content, f"messages.{i}.content", role)
        if problem:
            return problem
    return _tool_turns(messages)


def _tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is None:
        names: list[str] = []
    elif not isinstance(tools, list):
        return "tools: Input should be a valid list"
    else:
        names = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"tools.{i}: Input should be a valid dictionary"
            if tool.get("type") not in (None, "custom"):
                continue  # server tools (web_search_..., bash_...) have no input_schema
            name = tool.get("name")
            if not isinstance(name, str):
                return f"tools.{i}.custom.name: Field required"
            if not _TOOL_NAME.match(name):
                return f"tools.{i}.custom.name: String should match pattern '{_TOOL_NAME.pattern}'"
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                return f"tools.{i}.custom.input_schema: Field required"
            if schema.get("type") != "object":
                return f"tools.{i}.custom.input_schema.type: Input should be 'object'"
            names.append(name)
        if len(set(names)) != len(names):
            return "tools: Tool names must be unique."
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        return (
            "tool_choice: Input tag found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    if choice["type"] == "tool":
        if not isinstance(choice.get("name"), str):
            return "tool_choice.tool.name: Field required"
        if choice["name"] not in names:
            return f"tool_choice: Tool '{choice['name']}' not found in tools"
    if choice["type"] in ("any", "tool") and not names and not tools:
        return "tool_choice: tool_choice may only be specified while providing tools"
    return None


def _thinking(body: dict[str, Any], count_tokens: bool) -> str | None:
    thinking = body.get("thinking")
    if thinking is None:
        return None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in _THINKING_TYPES:
        return (
            f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected "
            "tags: 'adaptive', 'disabled', 'enabled'"
        )
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            return "thinking.enabled.budget_tokens: Field required"
        if budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if not count_tokens and budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    choice = body.get("tool_choice")
    if kind != "disabled" and isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def _output_format(body: dict[str, Any]) -> str | None:
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        return "output_config: Input should be a valid dictionary"
    candidates = [("output_format", body.get("output_format"))]
    if isinstance(config, dict):
        candidates.append(("output_config.format", config.get("format")))
    for where, fmt in candidates:
        if fmt is None:
            continue
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            return f"{where}.type: Input should be 'json_schema'"
        if not isinstance(fmt.get("schema"), dict):
            return f"{where}.schema: Field required"
    return None


def validate_messages_body(
    body: dict[str, Any], models: list[ModelEntry], *, count_tokens: bool = False
) -> str | None:
    """Return the message of a 400 invalid_request_error, or None if the body is acceptable."""
    required = ("model", "messages") if count_tokens else ("model", "max_tokens", "messages")
    for name in required:
        if name not in body:
            return f"{name}: Field required"
    model = body["model"]
    if not isinstance(model, str) or not model:
        return "model: Input should be a valid string"
    if not count_tokens:
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return "max_tokens: Input should be a valid integer"
        if max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
        entry = find_model(models, model)
        if entry is not None and entry.max_output_tokens is not None and max_tokens > entry.max_output_tokens:
            return (
                f"max_tokens: {max_tokens} > {entry.max_output_tokens}, which is the maximum allowed "
                f"number of output tokens for {model}"
            )
    problem = _messages(body["messages"])
    if problem:
        return problem
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    return f"system.{j}.type: Input should be 'text'"
                if not isinstance(block.get("text"), str):
                    return f"system.{j}.text: Field required"
        elif not isinstance(system, str):
            return "system: Input should be a valid string or a list of text blocks"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    if rejects_sampling_params(model):
        for param in SAMPLING_PARAMS:
            if param in body:
                return f"`{param}` is deprecated for this model."
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            return "temperature: Input should be a valid number"
        if not 0 <= temperature <= 1:
            return "temperature: range: 0..1"
    return _tools(body) or _thinking(body, count_tokens) or _output_format(body)
