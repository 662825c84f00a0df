"""Validation of Chat Completions bodies, with the real API's 400 messages where we know them."""

from __future__ import annotations

import re
from typing import Any

from llm_api.emulator.catalogue import ModelEntry, find_model
from llm_api.emulator.openai_messages import Invalid, check_messages
from llm_api.emulator.upstream import ErrorReply

# Reasoning models: only the default temperature, and max_completion_tokens not max_tokens.
REASONING_MODEL_PREFIXES: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def is_reasoning_model(model: str) -> bool:
    return model.startswith(REASONING_MODEL_PREFIXES)


def error_payload(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


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
    check_messages(messages)
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
