"""Which sampling parameters each model takes: a small table, configurable with MODEL_CAPABILITIES."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    temperature: bool = True
    max_tokens_param: MaxTokensParam = "max_tokens"


class _CapabilityOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: bool = True
    max_tokens_param: MaxTokensParam = "max_tokens"


_REASONING = ModelCapabilities(temperature=False, max_tokens_param="max_completion_tokens")
_NO_SAMPLING = ModelCapabilities(temperature=False)

# Anthropic deprecated temperature/top_p for models released after Claude Opus 4.6; OpenAI's
# reasoning models accept only the default temperature and want max_completion_tokens.
BUILT_IN: tuple[tuple[str, ModelCapabilities], ...] = (
    ("claude-opus-4-7*", _NO_SAMPLING),
    ("claude-opus-4-8*", _NO_SAMPLING),
    ("claude-opus-5*", _NO_SAMPLING),
    ("claude-sonnet-5*", _NO_SAMPLING),
    ("claude-fable-5*", _NO_SAMPLING),
    ("o1*", _REASONING),
    ("o3*", _REASONING),
    ("o4*", _REASONING),
    ("gpt-5*", _REASONING),
)

_OVERRIDES = TypeAdapter(dict[str, _CapabilityOverride])


class CapabilityTable:
    """First matching glob wins; configured patterns are tried before the built-in ones."""

    def __init__(self, overrides_json: str | None = None) -> None:
        configured: list[tuple[str, ModelCapabilities]] = []
        if overrides_json:
            parsed = _OVERRIDES.validate_python(json.loads(overrides_json))
            configured = [
                (pattern, ModelCapabilities(o.temperature, o.max_tokens_param))
                for pattern, o in parsed.items()
            ]
        self._rules = (*configured, *BUILT_IN)
        self._cache: dict[str, ModelCapabilities] = {}

    def lookup(self, model: str) -> ModelCapabilities:
        cached = self._cache.get(model)
        if cached is not None:
            return cached
        found = next(
            (caps for pattern, caps in self._rules if fnmatch.fnmatchcase(model, pattern)),
            ModelCapabilities(),
        )
        if len(self._cache) < 4096:
            self._cache[model] = found
        return found
