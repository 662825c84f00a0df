"""Parse and validate Messages request bodies; errors name the field and the rule, never the value."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from llm_api.codecs.anthropic_messages.wire import CountTokensRequest, MessagesRequest
from llm_api.errors import InvalidRequest

_MESSAGES = TypeAdapter(MessagesRequest)
_COUNT_TOKENS = TypeAdapter(CountTokensRequest)


def validate_request(body: bytes) -> dict[str, Any]:
    """Parse and validate a `POST /v1/messages` body; the parsed JSON, unchanged, for the caller to use."""
    return _validate(body, _MESSAGES)


def validate_count_tokens(body: bytes) -> dict[str, Any]:
    """Parse and validate a `POST /v1/messages/count_tokens` body."""
    return _validate(body, _COUNT_TOKENS)


def _validate(body: bytes, adapter: TypeAdapter[Any]) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        adapter.validate_python(data)
    except ValidationError as exc:
        details = validation_details(exc)
        first = details[0]
        raise InvalidRequest(f"{first['loc']}: {first['msg']}", details=details) from None
    return data


def validation_details(exc: ValidationError) -> list[dict[str, object]]:
    """Each error's field (Anthropic's dotted form, `messages.0.content`) and rule, never its value."""
    details: list[dict[str, object]] = []
    for error in exc.errors(include_url=False):
        parts = [str(part) for part in error["loc"] if not str(part).startswith("@")]
        message = error["msg"]
        if error["type"] == "union_tag_invalid":
            context = error.get("ctx") or {}
            parts.append(str(context.get("discriminator", "type")).removesuffix("()"))
            expected = str(context.get("expected_tags", "")).replace("@", "")
            message = f"Input should be an object whose {parts[-1]} is one of {expected}"
        else:
            value = error.get("input")
            # A rule's message may quote the offending value (a custom check, say); never echo it.
            if isinstance(value, str) and value and value in message:
                message = error["type"]
        loc = ".".join(parts)
        details.append({"loc": loc or "body", "type": error["type"], "msg": message})
    return details


_LOCAL = "#/$defs/"


def request_json_schema(
    request_type: Any = MessagesRequest,
    *,
    ref_prefix: str = "#/components/schemas/",
    name_prefix: str = "Anthropic",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON schema and its definitions, with `$ref`s pointing at `ref_prefix`.

    Put the definitions into the OpenAPI document's `components.schemas`; each is named with
    `name_prefix` (`AnthropicTextBlock`) so that they cannot collide with another format's. The body is
    `MessagesRequest` or `CountTokensRequest`.
    """
    schema = TypeAdapter(request_type).json_schema(ref_template=_LOCAL + "{model}")
    defs = schema.pop("$defs", {})

    def moved(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: ref_prefix + name_prefix + value.removeprefix(_LOCAL)
                if key == "$ref" and isinstance(value, str) and value.startswith(_LOCAL)
                else moved(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [moved(item) for item in node]
        return node

    renamed = {name_prefix + name: moved(definition) for name, definition in defs.items()}
    return moved(schema), renamed
