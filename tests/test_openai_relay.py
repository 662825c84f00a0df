"""POST /v1/chat/completions to an OpenAI model: the client's body is relayed, changed only where the
gateway must (refused parameters dropped, max tokens clamped, stream usage asked for)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.compat import OPENAI_MODEL, only_upstream_body, openai_client
from tests.support import Emulator, Gateway

USER = {"role": "user", "content": "Say hello"}


def post(gateway: Gateway, body: dict[str, Any]) -> httpx.Response:
    with gateway.client() as client:
        return client.post("/v1/chat/completions", json=body)


def test_fields_the_gateway_does_not_model_reach_the_upstream_unchanged(
    gateway: Gateway, emu: Emulator
) -> None:
    body = {
        "model": OPENAI_MODEL,
        "messages": [
            {"role": "developer", "content": "Be brief.", "name": "policy"},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}], "name": "alice"},
        ],
        "logit_bias": {"50256": -100},
        "prediction": {"type": "content", "content": "Hello"},
        "service_tier": "default",
        "seed": 42,
        "metadata": {"team": "search"},
        "store": False,
        "user": "user-123",
        "max_tokens": 100,
        "temperature": 0.3,
        "a_future_vendor_field": {"nested": [1, 2, 3]},
    }
    response = post(gateway, body)
    assert response.status_code == 200, response.text
    assert "X-LLM-Dropped-Params" not in response.headers
    assert only_upstream_body(emu) == body


def test_the_answer_is_relayed_as_the_upstream_sent_it(gateway: Gateway, emu: Emulator) -> None:
    response = post(gateway, {"model": OPENAI_MODEL, "messages": [USER]})
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["choices"][0]["message"]["content"] == "Hello from the emulator."


def test_streams_always_ask_for_usage_and_keep_other_stream_options(gateway: Gateway, emu: Emulator) -> None:
    chunks = list(
        openai_client(gateway).chat.completions.create(
            model=OPENAI_MODEL, messages=[USER], stream=True, stream_options={"include_obfuscation": False}
        )
    )
    assert all(chunk.usage is None for chunk in chunks)
    sent = only_upstream_body(emu)
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}


def test_parameters_a_reasoning_model_refuses_are_dropped_and_named(gateway: Gateway, emu: Emulator) -> None:
    response = post(
        gateway,
        {"model": "o3", "messages": [USER], "temperature": 0.2, "presence_penalty": 0.5, "max_tokens": 300},
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Dropped-Params"] == "temperature,presence_penalty"
    sent = only_upstream_body(emu)
    assert "temperature" not in sent and "presence_penalty" not in sent
    # Reasoning models want max_completion_tokens.
    assert sent["max_completion_tokens"] == 300 and "max_tokens" not in sent


def test_reasoning_effort_reaches_reasoning_models_and_is_dropped_elsewhere(
    gateway: Gateway, emu: Emulator
) -> None:
    assert post(gateway, {"model": "o3", "messages": [USER], "reasoning_effort": "low"}).status_code == 200
    assert only_upstream_body(emu)["reasoning_effort"] == "low"
    emu.reset()
    response = post(gateway, {"model": OPENAI_MODEL, "messages": [USER], "reasoning_effort": "low"})
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Dropped-Params"] == "reasoning_effort"
    assert "reasoning_effort" not in only_upstream_body(emu)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_above_the_models_limit_is_clamped(gateway: Gateway, emu: Emulator, field: str) -> None:
    response = post(gateway, {"model": "gpt-4o-mini", "messages": [USER], field: 32000})
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Clamped-Params"] == field
    assert only_upstream_body(emu)[field] == 16384


def test_unknown_fields_in_messages_and_tools_survive(gateway: Gateway, emu: Emulator) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}, "strict": True},
    }
    body = {"model": OPENAI_MODEL, "messages": [USER], "tools": [tool], "tool_choice": "none"}
    assert post(gateway, body).status_code == 200
    assert only_upstream_body(emu)["tools"] == [tool]
