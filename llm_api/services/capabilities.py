"""What each model takes: sampling parameters, its max-tokens parameter and output limit, structured
outputs, reasoning. A small table of glob patterns, configurable with MODEL_CAPABILITIES."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]

# What a Claude model is asked for when an OpenAI-format client (or /v1/chat) gives no max_tokens:
# Anthropic requires the field. 4096 is enough for a chat answer and keeps a forgotten limit cheap.
DEFAULT_CLAUDE_MAX_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    """`refuses` names the request parameters the model does not take (wire names, e.g. `top_k`);
    `max_output_tokens` is the most it can answer (a larger max_tokens is clamped), None when unknown."""

    temperature: bool = True
    max_tokens_param: MaxTokensParam = "max_tokens"
    max_output_tokens: int | None = None
    default_max_tokens: int = DEFAULT_CLAUDE_MAX_TOKENS
    structured_outputs: bool = False
    reasoning: bool = False
    refuses: frozenset[str] = field(default_factory=frozenset)

    def takes(self, parameter: str) -> bool:
        if parameter == "temperature" and not self.temperature:
            return False
        return parameter not in self.refuses


class _CapabilityOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: bool = True
    max_tokens_param: MaxTokensParam = "max_tokens"
    max_output_tokens: int | None = Field(default=None, ge=1)
    default_max_tokens: int = Field(default=DEFAULT_CLAUDE_MAX_TOKENS, ge=1)
    structured_outputs: bool = False
    reasoning: bool = False
    refuses: list[str] = Field(default_factory=list)

    def build(self) -> ModelCapabilities:
        return ModelCapabilities(
            temperature=self.temperature,
            max_tokens_param=self.max_tokens_param,
            max_output_tokens=self.max_output_tokens,
            default_max_tokens=self.default_max_tokens,
            structured_outputs=self.structured_outputs,
            reasoning=self.reasoning,
            refuses=frozenset(self.refuses),
        )


# OpenAI's reasoning models take only the default sampling and no penalties or logprobs.
_REASONING_REFUSES = frozenset(
    {
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
    }
)
# Anthropic deprecated temperature/top_p/top_k for models released after Claude Opus 4.6.
_NO_SAMPLING_REFUSES = frozenset({"temperature", "top_p", "top_k"})


def _reasoning(max_output: int) -> ModelCapabilities:
    return ModelCapabilities(
        temperature=False,
        max_tokens_param="max_completion_tokens",
        max_output_tokens=max_output,
        structured_outputs=True,
        reasoning=True,
        refuses=_REASONING_REFUSES,
    )


def _claude(max_output: int, *, sampling: bool = True) -> ModelCapabilities:
    return ModelCapabilities(
        temperature=sampling,
        max_output_tokens=max_output,
        structured_outputs=True,
        reasoning=True,
        refuses=frozenset() if sampling else _NO_SAMPLING_REFUSES,
    )


def _gpt(max_output: int | None) -> ModelCapabilities:
    return ModelCapabilities(max_output_tokens=max_output, structured_outputs=True)


BUILT_IN: tuple[tuple[str, ModelCapabilities], ...] = (
    ("claude-opus-4-7*", _claude(128_000, sampling=False)),
    ("claude-opus-4-8*", _claude(128_000, sampling=False)),
    ("claude-opus-5*", _claude(128_000, sampling=False)),
    ("claude-sonnet-5*", _claude(128_000, sampling=False)),
    ("claude-fable-5*", _claude(128_000, sampling=False)),
    ("claude-opus-4-6*", _claude(128_000)),
    ("claude-opus-4-5*", _claude(64_000)),
    ("claude-sonnet-4-5*", _claude(64_000)),
    ("claude-haiku-4-5*", _claude(64_000)),
    ("claude-opus-4-1*", _claude(32_000)),
    ("claude-opus-4*", _claude(32_000)),
    ("claude-sonnet-4*", _claude(64_000)),
    ("claude-3-7-sonnet*", _claude(64_000)),
    ("claude-3-5-haiku*", ModelCapabilities(max_output_tokens=8192)),
    ("claude-*", ModelCapabilities(max_output_tokens=None)),
    ("o1*", _reasoning(100_000)),
    ("o3*", _reasoning(100_000)),
    ("o4*", _reasoning(100_000)),
    ("gpt-5*", _reasoning(128_000)),
    ("gpt-4o-mini*", _gpt(16_384)),
    ("gpt-4o*", _gpt(16_384)),
    ("gpt-4.1*", _gpt(32_768)),
    ("gpt-4-turbo*", _gpt(4096)),
    ("gpt-3.5-turbo*", _gpt(4096)),
)

_OVERRIDES = TypeAdapter(dict[str, _CapabilityOverride])


class CapabilityTable:
    """First matching glob wins; configured patterns are tried before the built-in ones."""

    def __init__(self, overrides_json: str | None = None) -> None:
        configured: list[tuple[str, ModelCapabilities]] = []
        if overrides_json:
            parsed = _OVERRIDES.validate_python(json.loads(overrides_json))
            configured = [(pattern, override.build()) for pattern, override in parsed.items()]
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
