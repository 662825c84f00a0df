"""Validation of Chat Completions bodies, with the real API's 400 messages where we know them."""

from __future__ import annotations

import re
from typing import Any

from llm_api.emulator.catalogue import ModelEntry, find_model
from llm_api.emulator.images import MEDIA_TYPES, decode_base64, is_http_url, parse_data_url, sniff
from llm_api.emulator.upstream import ErrorReply

# Reasoning models: only the default temperature, and max_completion_tokens not max_tokens.
REASONING_MODEL_PREFIXES: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
VALID_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool", "function")
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PART_TYPES: dict[str, tuple[str, ...]] = {
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "function": ("text",),
}


class Invalid(Exception):
    """One 400 invalid_request_error: message, param, code."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def is_reasoning_model(model: str) -> bool:
    return model.startswith(REASONING_MODEL_PREFIXES)


def error_payload(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _image_url(part: dict[str, Any], where: str) -> None:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise Invalid(
            f"Missing required parameter: '{where}.image_url.url'.",
            f"{where}.image_url.url",
            "missing_required_parameter",
        )
    detail = image.get("detail") if isinstance(image, dict) else None
    if detail is not None and detail not in ("auto", "low", "high"):
        raise Invalid(
            f"Invalid value: '{detail}'. Supported values are: 'auto', 'low', and 'high'.",
            f"{where}.image_url.detail",
            "invalid_value",
        )
    if url.startswith("data:"):
        parsed = parse_data_url(url)
        if parsed is None or not parsed[1]:
            raise Invalid(
                f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an image "
                "MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value "
                "without a base64 payload.",
                f"{where}.image_url.url",
                "invalid_value",
            )
        media_type, _, data = parsed
        if media_type not in MEDIA_TYPES:
            raise Invalid(
                f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an image "
                "MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got unsupported "
                f"MIME type '{media_type}'.",
                f"{where}.image_url.url",
                "invalid_value",
            )
        raw = decode_base64(data) if data else None
        if raw is None or sniff(raw) is None:
            raise Invalid(
                "You uploaded an unsupported image. Please make sure your image is below 20 MB in "
                "size and is of one the following formats: ['png', 'jpeg', 'gif', 'webp'].",
                f"{where}.image_url.url",
                "invalid_image_format",
            )
        return
    if not is_http_url(url):
        raise Invalid(
            f"Invalid '{where}.image_url.url'. Expected a valid URL, but got a value with an invalid format.",
            f"{where}.image_url.url",
            "invalid_value",
        )


def _content(message: dict[str, Any], where: str) -> None:
    content = message.get("content")
    role = message["role"]
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return
        if role == "assistant":
            return
        raise Invalid(
            f"Missing required parameter: '{where}.content'.",
            f"{where}.content",
            "missing_required_parameter",
        )
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise Invalid(
            f"Invalid type for '{where}.content': expected one of a string or array of objects.",
            f"{where}.content",
            "invalid_type",
        )
    for k, part in enumerate(content):
        part_where = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        allowed = _PART_TYPES[role]
        if kind not in allowed:
            if kind == "image_url":
                raise Invalid(
                    f"Image URLs are only allowed for messages with role 'user', but this message "
                    f"with role '{role}' contains an image URL.",
                    f"{where}.content",
                    "invalid_value",
                )
            supported = ", ".join(f"'{t}'" for t in allowed)
            raise Invalid(
                f"Invalid value: '{kind}'. Supported values are: {supported}.",
                f"{part_where}.type",
                "invalid_value",
            )
        assert isinstance(part, dict)
        if kind == "text" and not isinstance(part.get("text"), str):
            raise Invalid(
                f"Missing required parameter: '{part_where}.text'.",
                f"{part_where}.text",
                "missing_required_parameter",
            )
        if kind == "image_url":
            _image_url(part, part_where)


def _tool_calls(message: dict[str, Any], where: str) -> list[str]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise Invalid(
            f"Invalid type for '{where}.tool_calls': expected an array.",
            f"{where}.tool_calls",
            "invalid_type",
        )
    ids: list[str] = []
    for k, call in enumerate(calls):
        call_where = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            raise Invalid(
                f"Missing required parameter: '{call_where}.id'.",
                f"{call_where}.id",
                "missing_required_parameter",
            )
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise Invalid(
                f"Missing required parameter: '{call_where}.function'.",
                f"{call_where}.function",
                "missing_required_parameter",
            )
        if not isinstance(function.get("arguments"), str):
            raise Invalid(
                f"Missing required parameter: '{call_where}.function.arguments'.",
                f"{call_where}.function.arguments",
                "missing_required_parameter",
            )
        ids.append(call["id"])
    return ids


def _messages(messages: list[Any]) -> None:
    pending: list[str] = []  # tool_call_ids of the last assistant message not yet answered
    pending_at = 0
    answered: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise Invalid(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
        role = message.get("role")
        if role not in VALID_ROLES:
            raise Invalid(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                f"{where}.role",
                "invalid_value",
            )
        _content(message, where)
        if role == "tool":
            tool_call_id = message.get("tool_call_id")
            if not isinstance(tool_call_id, str):
                raise Invalid(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    f"{where}.tool_call_id",
                    "missing_required_parameter",
                )
            if tool_call_id not in pending:
                raise Invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    f"{where}.role",
                )
            answered.add(tool_call_id)
            continue
        _unanswered(pending, answered, pending_at)
        pending, answered, pending_at = [], set(), i
        if role == "assistant":
            pending = _tool_calls(message, where)
    _unanswered(pending, answered, pending_at)


def _unanswered(pending: list[str], answered: set[str], index: int) -> None:
    missing = [tool_id for tool_id in pending if tool_id not in answered]
    if missing:
        raise Invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            f"{', '.join(missing)}",
            f"messages.[{index}].role",
        )


def _tools(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise Invalid("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
                raise Invalid(
                    f"Missing required parameter: 'tools[{i}].type'.",
                    f"tools[{i}].type",
                    "missing_required_parameter",
                )
            if tool["type"] == "custom":
                continue
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise Invalid(
                    f"Missing required parameter: 'tools[{i}].function'.",
                    f"tools[{i}].function",
                    "missing_required_parameter",
                )
            if not _FUNCTION_NAME.match(function["name"]):
                raise Invalid(
                    f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a "
                    f"string that matches the pattern '{_FUNCTION_NAME.pattern}'.",
                    f"tools[{i}].function.name",
                    "invalid_value",
                )
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                raise Invalid(
                    f"Invalid type for 'tools[{i}].function.parameters': expected an object.",
                    f"tools[{i}].function.parameters",
                    "invalid_type",
                )
            names.append(function["name"])
    choice = body.get("tool_choice")
    if choice is None:
        return names
    if tools is None:
        raise Invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise Invalid(
                f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.",
                "tool_choice",
                "invalid_value",
            )
        return names
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return names
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise Invalid(
            "Missing required parameter: 'tool_choice.function'.",
            "tool_choice.function",
            "missing_required_parameter",
        )
    if function["name"] not in names:
        raise Invalid(
            f"Invalid value for 'tool_choice': function '{function['name']}' not found in 'tools'.",
            "tool_choice",
        )
    return names


def _response_format(body: dict[str, Any]) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise Invalid(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
            "response_format.type",
            "invalid_value",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise Invalid(
                "Missing required parameter: 'response_format.json_schema'.",
                "response_format.json_schema",
                "missing_required_parameter",
            )
        if not isinstance(spec.get("name"), str):
            raise Invalid(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
                "missing_required_parameter",
            )
        if spec.get("schema") is not None and not isinstance(spec["schema"], dict):
            raise Invalid(
                "Invalid type for 'response_format.json_schema.schema': expected an object.",
                "response_format.json_schema.schema",
                "invalid_type",
            )
    if kind == "json_object":
        words = " ".join(_message_text(m) for m in body["messages"]).lower()
        if "json" not in words:
            raise Invalid(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of "
                "type 'json_object'.",
                "messages",
            )


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _limits(body: dict[str, Any], model: str, models: list[ModelEntry]) -> None:
    entry = find_model(models, model)
    for param in ("max_tokens", "max_completion_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"Invalid type for '{param}': expected an integer.", param, "invalid_type")
        if value < 1:
            raise Invalid(
                f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got "
                f"{value} instead.",
                param,
                "integer_below_min_value",
            )
        if entry is not None and entry.max_output_tokens is not None and value > entry.max_output_tokens:
            raise Invalid(
                f"{param} is too large: {value}. This model supports at most "
                f"{entry.max_output_tokens} completion tokens, whereas you provided {value}.",
                param,
                "invalid_value",
            )


def _reasoning(body: dict[str, Any], model: str) -> None:
    effort = body.get("reasoning_effort")
    if is_reasoning_model(model):
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            raise Invalid(
                f"Unsupported value: 'temperature' does not support {temperature} "
                "with this model. Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
        if body.get("max_tokens") is not None:
            raise Invalid(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        if effort is not None and effort not in REASONING_EFFORTS:
            raise Invalid(
                f"Invalid value: '{effort}'. Supported values are: 'minimal', 'low', 'medium', and 'high'.",
                "reasoning_effort",
                "invalid_value",
            )
    elif effort is not None:
        raise Invalid(
            "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "reasoning_effort",
            "unsupported_parameter",
        )


def _temperature(body: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is None:
        return
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        raise Invalid("Invalid type for 'temperature': expected a number.", "temperature", "invalid_type")
    if temperature > 2:
        raise Invalid(
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
            f"but got {temperature} instead.",
            "temperature",
            "decimal_above_max_value",
        )
    if temperature < 0:
        raise Invalid(
            "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, "
            f"but got {temperature} instead.",
            "temperature",
            "decimal_below_min_value",
        )


def _check(body: dict[str, Any], models: list[ModelEntry]) -> None:
    model = body.get("model")
    if not model:
        raise Invalid("you must provide a model parameter")
    if not isinstance(model, str):
        raise Invalid("Invalid type for 'model': expected a string.", "model", "invalid_type")
    if "messages" not in body:
        raise Invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise Invalid("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        raise Invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    _messages(messages)
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise Invalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    _reasoning(body, model)
    _temperature(body)
    _limits(body, model, models)
    _tools(body)
    _response_format(body)


def validate_chat_body(body: dict[str, Any], models: list[ModelEntry]) -> ErrorReply | None:
    """Return a 400 in OpenAI's format, or None if the body is acceptable."""
    try:
        _check(body, models)
    except Invalid as exc:
        return ErrorReply(400, error_payload(exc.message, "invalid_request_error", exc.param, exc.code))
    return None
