"""Validation of control-plane bodies: config, faults, scripted turns, the model catalogue."""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from llm_api.emulator.catalogue import ModelEntry, Provider
from llm_api.emulator.state import PROVIDERS, ControlError, EmulatorConfig, Fault, ToolCallSpec, Turn

Spec = dict[str, tuple[tuple[type, ...], bool]]
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _check_type(name: str, value: Any, types: tuple[type, ...], *, nullable: bool) -> None:
    if value is None and nullable:
        return
    # bool is a subclass of int: refuse it where a number is expected.
    if isinstance(value, bool) and bool not in types:
        raise ControlError(f"{name}: wrong type")
    if not isinstance(value, types):
        raise ControlError(f"{name}: wrong type")


_CONFIG_TYPES: Spec = {
    "text": ((str,), False),
    "chunks": ((int,), True),
    "blocks": ((list,), True),
    "first_token_delay_s": ((int, float), False),
    "chunk_delay_s": ((int, float), False),
    "stop_reason": ((str,), False),
    "ping_before_first": ((bool,), False),
    "tool_calls": ((list,), True),
    "thinking_text": ((str,), False),
    "cached_tokens": ((int,), False),
    "cache_creation_tokens": ((int,), False),
}

_FAULT_TYPES: Spec = {
    "provider": ((str,), True),
    "status": ((int,), True),
    "retry_after": ((str, int, float), True),
    "retry_after_ms": ((str, int, float), True),
    "hang": ((bool,), False),
    "delay_s": ((int, float), False),
    "drop": ((bool,), False),
    "garbage": ((bool,), False),
    "fail_after_chunks": ((int,), True),
    "error_type": ((str,), True),
    "message": ((str,), True),
}

_TURN_TYPES: Spec = {
    "provider": ((str,), True),
    "text": ((str,), True),
    "tool_calls": ((list,), True),
    "stop_reason": ((str,), True),
}

_TOOL_CALL_TYPES: Spec = {
    "name": ((str,), False),
    "input": ((dict,), False),
    "id": ((str,), True),
}

_MODEL_TYPES: Spec = {
    "id": ((str,), False),
    "provider": ((str,), True),
    "display_name": ((str,), True),
    "created": ((int,), True),
    "max_output_tokens": ((int,), True),
    "max_input_tokens": ((int,), True),
    "owned_by": ((str,), True),
}


def _check_fields(name: str, raw: Any, spec: Spec, required: tuple[str, ...] = ()) -> None:
    if not isinstance(raw, dict):
        raise ControlError(f"{name}: expected a JSON object")
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise ControlError(f"{name}: unknown field(s) {unknown}")
    for key in required:
        if key not in raw:
            raise ControlError(f"{name}.{key}: required")
    for key, value in raw.items():
        types, nullable = spec[key]
        _check_type(f"{name}.{key}", value, types, nullable=nullable)


def _provider(name: str, value: Any) -> None:
    if value is not None and value not in PROVIDERS:
        raise ControlError(f"{name}: expected one of {list(PROVIDERS)} or null")


def parse_tool_calls(name: str, raw: list[Any]) -> list[ToolCallSpec]:
    result: list[ToolCallSpec] = []
    for i, item in enumerate(raw):
        where = f"{name}[{i}]"
        _check_fields(where, item, _TOOL_CALL_TYPES, required=("name",))
        if not _TOOL_NAME.match(item["name"]):
            raise ControlError(f"{where}.name: must match {_TOOL_NAME.pattern}")
        result.append(ToolCallSpec(**item))
    return result


def merge_config(current: EmulatorConfig, raw: Any) -> EmulatorConfig:
    """Return ``current`` updated with the fields present in ``raw`` (validated)."""
    _check_fields("config", raw, _CONFIG_TYPES)
    values = {f.name: getattr(current, f.name) for f in fields(EmulatorConfig)}
    values.update(raw)
    blocks = values["blocks"]
    if blocks is not None and (not blocks or not all(isinstance(b, str) for b in blocks)):
        raise ControlError("config.blocks: expected a non-empty list of strings")
    if values["chunks"] is not None and values["chunks"] < 1:
        raise ControlError("config.chunks: must be >= 1")
    if values["first_token_delay_s"] < 0 or values["chunk_delay_s"] < 0:
        raise ControlError("config: delays must be >= 0")
    if values["cached_tokens"] < 0 or values["cache_creation_tokens"] < 0:
        raise ControlError("config: token counts must be >= 0")
    if "tool_calls" in raw and raw["tool_calls"] is not None:
        values["tool_calls"] = parse_tool_calls("config.tool_calls", raw["tool_calls"]) or None
    return EmulatorConfig(**values)


def parse_faults(raw: Any) -> list[Fault]:
    """Parse the body of ``POST /_emulator/faults``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("faults"), list):
        raise ControlError('faults: expected {"faults": [...], "provider": ...}')
    default_provider = raw.get("provider")
    _provider("provider", default_provider)
    unknown = sorted(set(raw) - {"faults", "provider"})
    if unknown:
        raise ControlError(f"faults: unknown field(s) {unknown}")
    result: list[Fault] = []
    for i, item in enumerate(raw["faults"]):
        _check_fields(f"faults[{i}]", item, _FAULT_TYPES)
        values = dict(item)
        values.setdefault("provider", default_provider)
        _provider(f"faults[{i}].provider", values["provider"])
        for key in ("retry_after", "retry_after_ms"):
            if values.get(key) is not None:
                values[key] = str(values[key])
        status = values.get("status")
        if status is not None and not 400 <= status <= 599:
            raise ControlError(f"faults[{i}].status: must be a 4xx or 5xx code")
        fac = values.get("fail_after_chunks")
        if fac is not None and fac < 0:
            raise ControlError(f"faults[{i}].fail_after_chunks: must be >= 0")
        if values.get("delay_s", 0) < 0:
            raise ControlError(f"faults[{i}].delay_s: must be >= 0")
        result.append(Fault(**values))
    return result


def parse_turns(raw: Any) -> list[Turn]:
    """Parse the body of ``POST /_emulator/turns``: ``{"turns": [...], "provider": ...}``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list):
        raise ControlError('turns: expected {"turns": [...], "provider": ...}')
    default_provider = raw.get("provider")
    _provider("provider", default_provider)
    unknown = sorted(set(raw) - {"turns", "provider"})
    if unknown:
        raise ControlError(f"turns: unknown field(s) {unknown}")
    result: list[Turn] = []
    for i, item in enumerate(raw["turns"]):
        where = f"turns[{i}]"
        _check_fields(where, item, _TURN_TYPES)
        provider = item.get("provider", default_provider)
        _provider(f"{where}.provider", provider)
        tool_calls = parse_tool_calls(f"{where}.tool_calls", item.get("tool_calls") or [])
        text = item.get("text")
        if not tool_calls and not text:
            raise ControlError(f"{where}: needs a non-empty text or tool_calls")
        result.append(Turn(provider, text, tool_calls, item.get("stop_reason")))
    return result


def parse_models(raw: Any) -> list[ModelEntry]:
    """Parse the body of ``POST /_emulator/models``: ``{"models": [...]}`` replaces the catalogue."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list) or set(raw) != {"models"}:
        raise ControlError('models: expected {"models": [...]}')
    result: list[ModelEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw["models"]):
        where = f"models[{i}]"
        _check_fields(where, item, _MODEL_TYPES, required=("id",))
        model_id: str = item["id"]
        if not model_id or model_id in seen:
            raise ControlError(f"{where}.id: must be non-empty and unique")
        seen.add(model_id)
        provider: Provider = item.get("provider") or (
            "anthropic" if model_id.startswith("claude") else "openai"
        )
        _provider(f"{where}.provider", provider)
        result.append(
            ModelEntry(
                id=model_id,
                provider=provider,
                display_name=item.get("display_name") or model_id,
                created=item.get("created") or 1_700_000_000,
                max_output_tokens=item.get("max_output_tokens"),
                max_input_tokens=item.get("max_input_tokens"),
                owned_by=item.get("owned_by") or "system",
            )
        )
    return result
