"""Parse and validate Messages request bodies; errors name the field and the rule, never the value."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

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


def request_json_schema(
    model: type[BaseModel] = MessagesRequest, *, ref_prefix: str = "#/components/schemas/"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request body's JSON schema and its definitions, with `$ref`s pointing at `ref_prefix`.

    Put the definitions into the OpenAPI document's `components.schemas`; `model` may be
    `CountTokensRequest` as well.
    """
    schema = model.model_json_schema(ref_template=ref_prefix + "{model}")
    defs = schema.pop("$defs", {})
    return schema, defs
