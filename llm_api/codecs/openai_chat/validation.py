"""Parse and validate a Chat Completions body; errors name the field and the rule, never the value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError
from typing_extensions import is_typeddict

from llm_api.codecs.openai_chat import wire
from llm_api.errors import InvalidRequest


def _field_names() -> frozenset[str]:
    names: set[str] = set()
    for value in vars(wire).values():
        if is_typeddict(value):
            names.update(value.__annotations__)
    return frozenset(names)


# A key of the client's own (a `metadata` or `logit_bias` key) may be anything, even prompt text: an error
# location shows only the keys the wire types define, any other key as "*".
KNOWN_FIELDS = _field_names()


def param_of(loc: Sequence[str | int]) -> str:
    """`("messages", 3, "content", 1)` → `messages[3].content[1]` (OpenAI's way of naming a field)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _clean_loc(loc: Sequence[str | int], body: Any, *, missing: bool) -> list[str | int]:
    """Pydantic's location without its union labels (`str`, `list[...]`, tags): the path into the JSON.

    Walking the body tells a key from a label; a `missing` error's last element is the absent field.
    """
    path: list[str | int] = []
    node = body
    for position, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part if part in KNOWN_FIELDS else "*")
            node = node[part]
        elif missing and position == len(loc) - 1 and isinstance(part, str):
            path.append(part if part in KNOWN_FIELDS else "*")
    return path


def _message(error: Any) -> str:
    if error["type"] == "union_tag_invalid":
        # Pydantic's own message repeats the tag the client sent.
        ctx = error.get("ctx") or {}
        return f"Input tag found using {ctx.get('discriminator', 'type')} must be one of: " + str(
            ctx.get("expected_tags", "")
        )
    return str(error["msg"])


def safe_details(exc: ValidationError, body: Any) -> list[dict[str, object]]:
    details: list[dict[str, object]] = []
    for error in exc.errors():
        loc = _clean_loc(error.get("loc", ()), body, missing=error["type"] == "missing")
        detail: dict[str, object] = {"loc": loc, "type": error["type"], "msg": _message(error)}
        if detail not in details:
            details.append(detail)
    return details


def _loc(detail: dict[str, object]) -> list[str | int]:
    loc = detail["loc"]
    assert isinstance(loc, list)
    return loc


def validate_request(body: bytes) -> dict[str, Any]:
    """The client's body as a plain dict, once it is known to be a valid Chat Completions request.

    Raises `InvalidRequest`: its message names the first wrong field (`messages[0].content: ...`) and
    its `details` every one, each with its `loc`, rule `type` and `msg`, never the value sent.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "the request body is not valid JSON",
            details=[{"loc": ["body"], "type": "json_invalid", "msg": "Invalid JSON"}],
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            "the request body must be a JSON object",
            details=[{"loc": ["body"], "type": "dict_type", "msg": "Input should be an object"}],
        )
    try:
        wire.REQUEST.validate_python(data)
    except ValidationError as exc:
        details = safe_details(exc, data)
        # `str | list` content fails both ways: the deepest location is the one that tells what is wrong.
        first = max(details, key=lambda detail: len(_loc(detail)))
        raise InvalidRequest(f"{param_of(_loc(first)) or 'body'}: {first['msg']}", details=details) from None
    return data
