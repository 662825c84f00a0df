"""A small valid instance of a JSON schema: what the emulator answers for structured output.

Covers what OpenAI strict schemas, Pydantic and Anthropic tool ``input_schema``\\ s use: ``type``
(or a list of types), ``enum``/``const``, objects (required properties, and all properties
when the schema lists none as required), arrays (``minItems``, at least one item), strings
(``minLength`` and the common formats), numbers within their bounds, ``anyOf``/``oneOf``/
``allOf`` and local ``$ref`` (``#/$defs/...``, ``#/definitions/...``).
"""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 12
_FORMATS: dict[str, str] = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
    "duration": "P1D",
}


def instance_of(schema: Any, *, text: str = "example") -> Any:
    """A value valid against ``schema`` (best effort); strings are ``text`` where free."""
    return _Builder(schema, text).build(schema, 0)


class _Builder:
    def __init__(self, root: Any, text: str) -> None:
        self.root = root
        self.text = text

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return {}
            node = node[part]
        return node

    def build(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return None if depth > _MAX_DEPTH else self.text
        if "$ref" in schema:
            return self.build(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.build((non_null or options)[0], depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
                if isinstance(part, dict):
                    for key, value in part.items():
                        if key == "properties" and isinstance(value, dict):
                            merged["properties"] = {**merged.get("properties", {}), **value}
                        elif key == "required" and isinstance(value, list):
                            merged["required"] = [*merged.get("required", []), *value]
                        else:
                            merged.setdefault(key, value)
            return self.build(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                kind = "string"
        return self._typed(kind, schema, depth)

    def _typed(self, kind: str, schema: dict[str, Any], depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            count = max(int(schema.get("minItems", 1)), 1)
            if isinstance(schema.get("maxItems"), int):
                count = min(count, schema["maxItems"])
            prefix = schema.get("prefixItems")
            if isinstance(prefix, list) and prefix:
                return [self.build(item, depth + 1) for item in prefix]
            return [self.build(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "string":
            return self._string(schema)
        if kind in ("number", "integer"):
            return self._number(kind, schema)
        if kind == "boolean":
            return True
        return None  # "null" or unknown

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = schema.get("required")
        names = [n for n in required if n in properties] if isinstance(required, list) else list(properties)
        if not names and not isinstance(required, list):
            names = list(properties)
        return {name: self.build(properties[name], depth + 1) for name in names}

    def _string(self, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        value = _FORMATS.get(fmt, self.text) if isinstance(fmt, str) else self.text
        min_length = schema.get("minLength")
        if isinstance(min_length, int) and len(value) < min_length:
            value = value + "x" * (min_length - len(value))
        max_length = schema.get("maxLength")
        if isinstance(max_length, int):
            value = value[:max_length]
        return value

    def _number(self, kind: str, schema: dict[str, Any]) -> int | float:
        low = schema.get("minimum")
        if low is None and isinstance(schema.get("exclusiveMinimum"), int | float):
            low = schema["exclusiveMinimum"] + 1
        high = schema.get("maximum")
        if high is None and isinstance(schema.get("exclusiveMaximum"), int | float):
            high = schema["exclusiveMaximum"] - 1
        value: int | float = 1
        if isinstance(low, int | float) and value < low:
            value = low
        if isinstance(high, int | float) and value > high:
            value = high
        if kind == "integer":
            return int(value) if float(value).is_integer() else int(value) + 1
        return float(value) if isinstance(value, float) else value
