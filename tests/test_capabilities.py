"""Unit tests for the model-capability table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llm_api.services.capabilities import CapabilityTable, ModelCapabilities


@pytest.mark.parametrize(
    ("model", "temperature", "param"),
    [
        ("claude-opus-4-5", True, "max_tokens"),
        ("claude-opus-4-6", True, "max_tokens"),
        ("claude-opus-4-7", False, "max_tokens"),
        ("claude-opus-4-7-20260101", False, "max_tokens"),
        ("claude-sonnet-5", False, "max_tokens"),
        ("claude-fable-5", False, "max_tokens"),
        ("claude-haiku-4-5", True, "max_tokens"),
        ("gpt-4o", True, "max_tokens"),
        ("gpt-4.1-mini", True, "max_tokens"),
        ("gpt-5", False, "max_completion_tokens"),
        ("gpt-5-mini", False, "max_completion_tokens"),
        ("o1", False, "max_completion_tokens"),
        ("o3-mini", False, "max_completion_tokens"),
        ("o4-mini", False, "max_completion_tokens"),
    ],
)
def test_built_in_table(model: str, temperature: bool, param: str) -> None:
    caps = CapabilityTable().lookup(model)
    assert caps.temperature is temperature
    assert caps.max_tokens_param == param


def test_configured_rows_come_first() -> None:
    table = CapabilityTable(
        '{"my-reasoner-*": {"temperature": false, "max_tokens_param": "max_completion_tokens"},'
        ' "gpt-5-legacy": {"temperature": true}}'
    )
    assert table.lookup("my-reasoner-2") == ModelCapabilities(False, "max_completion_tokens")
    assert table.lookup("gpt-5-legacy") == ModelCapabilities(True, "max_tokens")
    builtin = table.lookup("gpt-5")
    assert (builtin.temperature, builtin.max_tokens_param) == (False, "max_completion_tokens")


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValidationError):
        CapabilityTable('{"x*": {"temperature": "maybe"}}')
    with pytest.raises(ValidationError):
        CapabilityTable('{"x*": {"top_k": false}}')
    with pytest.raises(ValidationError):
        CapabilityTable('{"x*": {"max_output_tokens": 0}}')


@pytest.mark.parametrize(
    ("model", "max_output", "reasoning"),
    [
        ("gpt-4o-mini", 16_384, False),
        ("gpt-4o", 16_384, False),
        ("o3", 100_000, True),
        ("o4-mini", 100_000, True),
        ("gpt-5", 128_000, True),
        ("claude-opus-4-5", 64_000, True),
        ("claude-sonnet-4-5-20250929", 64_000, True),
        ("claude-haiku-4-5", 64_000, True),
        ("some-unknown-model", None, False),
    ],
)
def test_output_limits_and_reasoning(model: str, max_output: int | None, reasoning: bool) -> None:
    caps = CapabilityTable().lookup(model)
    assert caps.max_output_tokens == max_output
    assert caps.reasoning is reasoning


def test_refused_parameters() -> None:
    table = CapabilityTable('{"mine": {"refuses": ["top_k", "seed"], "max_output_tokens": 100}}')
    assert not table.lookup("mine").takes("top_k")
    assert table.lookup("mine").takes("temperature")
    assert not table.lookup("o3").takes("presence_penalty")
    assert not table.lookup("claude-opus-4-7").takes("top_k")
    assert table.lookup("claude-opus-4-5").takes("top_k")


def test_settings_refuse_a_bad_table() -> None:
    from llm_api.config import Settings

    with pytest.raises(ValidationError, match="MODEL_CAPABILITIES"):
        Settings(api_keys="k", model_capabilities="{not json")  # type: ignore[arg-type]
