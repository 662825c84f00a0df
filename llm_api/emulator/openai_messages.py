"""Validation of Chat Completions ``messages``: roles, content parts, images, tool-call turns."""

from __future__ import annotations

from typing import Any

from llm_api.emulator.images import MEDIA_TYPES, decode_base64, is_http_url, parse_data_url, sniff

VALID_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool", "function")
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
        if role == "assistant":  # an assistant turn may carry only tool calls
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
    allowed = _PART_TYPES[role]
    for k, part in enumerate(content):
        part_where = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(part, dict) or kind not in allowed:
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


def check_messages(messages: list[Any]) -> None:
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
