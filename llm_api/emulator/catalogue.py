"""The model catalogue behind ``GET /v1/models``: ids, names, release dates, output limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Provider = Literal["anthropic", "openai"]


@dataclass
class ModelEntry:
    """One model: listed by ``GET /v1/models`` and used for its ``max_tokens`` limit."""

    id: str
    provider: Provider
    display_name: str
    created: int  # unix seconds
    max_output_tokens: int | None = None
    max_input_tokens: int | None = None
    owned_by: str = "system"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ts(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


_DEFAULTS: tuple[tuple[str, Provider, str, str, int, int], ...] = (
    ("claude-opus-4-7", "anthropic", "Claude Opus 4.7", "2026-07-01", 128_000, 1_000_000),
    ("claude-sonnet-4-6", "anthropic", "Claude Sonnet 4.6", "2026-02-17", 64_000, 1_000_000),
    ("claude-opus-4-6", "anthropic", "Claude Opus 4.6", "2026-02-05", 128_000, 1_000_000),
    ("claude-opus-4-5", "anthropic", "Claude Opus 4.5", "2025-11-24", 64_000, 200_000),
    ("claude-haiku-4-5", "anthropic", "Claude Haiku 4.5", "2025-10-15", 64_000, 200_000),
    ("claude-sonnet-4-5", "anthropic", "Claude Sonnet 4.5", "2025-09-29", 64_000, 200_000),
    ("claude-opus-4-1", "anthropic", "Claude Opus 4.1", "2025-08-05", 32_000, 200_000),
    ("claude-3-5-haiku-20241022", "anthropic", "Claude Haiku 3.5", "2024-10-22", 8_192, 200_000),
    ("gpt-5", "openai", "gpt-5", "2025-08-07", 128_000, 400_000),
    ("gpt-5-mini", "openai", "gpt-5-mini", "2025-08-07", 128_000, 400_000),
    ("o3", "openai", "o3", "2025-04-16", 100_000, 200_000),
    ("o4-mini", "openai", "o4-mini", "2025-04-16", 100_000, 200_000),
    ("gpt-4.1", "openai", "gpt-4.1", "2025-04-14", 32_768, 1_047_576),
    ("gpt-4.1-mini", "openai", "gpt-4.1-mini", "2025-04-14", 32_768, 1_047_576),
    ("gpt-4o", "openai", "gpt-4o", "2024-05-13", 16_384, 128_000),
    ("gpt-4o-mini", "openai", "gpt-4o-mini", "2024-07-18", 16_384, 128_000),
)


def default_models() -> list[ModelEntry]:
    return [
        ModelEntry(
            id=model_id,
            provider=provider,
            display_name=name,
            created=_ts(day),
            max_output_tokens=max_out,
            max_input_tokens=max_in,
        )
        for model_id, provider, name, day, max_out, max_in in _DEFAULTS
    ]


def find_model(models: list[ModelEntry], model_id: str) -> ModelEntry | None:
    """The entry for ``model_id``: exact, else the longest id that it extends (``gpt-4o-2024-08-06``)."""
    best: ModelEntry | None = None
    for entry in models:
        if entry.id == model_id:
            return entry
        if model_id.startswith(entry.id + "-") and (best is None or len(entry.id) > len(best.id)):
            best = entry
    return best


def max_output_tokens(models: list[ModelEntry], model_id: str) -> int | None:
    entry = find_model(models, model_id)
    return entry.max_output_tokens if entry is not None else None


def rfc3339(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
