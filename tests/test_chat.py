"""POST /v1/chat, non-streaming, against the real gunicorn and the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Emulator, Gateway, gateway_env, run_gateway

USER = {"role": "user", "content": "What is the capital of France?"}


def chat(gateway: Gateway, **body: Any) -> Any:
    body.setdefault("messages", [USER])
    with gateway.client() as client:
        return client.post("/v1/chat", json=body)


@pytest.fixture(scope="module")
def strict_gateway(emulator: Emulator) -> Iterator[Gateway]:
    """No OpenAI key, unsupported parameters refused instead of dropped."""
    env = gateway_env(emulator, OPENAI_API_KEY="", DROP_UNSUPPORTED_PARAMS="false", WEB_CONCURRENCY="1")
    with run_gateway(env) as gw:
        yield gw


@pytest.mark.parametrize(
    ("model", "provider", "path"),
    [("claude-opus-4-5", "anthropic", "/v1/messages"), ("gpt-4o", "openai", "/v1/chat/completions")],
)
def test_answers_with_the_providers_own_values(
    gateway: Gateway, emu: Emulator, model: str, provider: str, path: str
) -> None:
    emu.configure(text="Paris is the capital.")
    response = chat(gateway, model=model)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "content", "model", "input_tokens", "output_tokens", "stop_reason"}
    assert body["content"] == "Paris is the capital."
    assert body["model"] == model
    assert body["stop_reason"] == "end_turn"
    assert body["input_tokens"] > 0 and body["output_tokens"] > 0
    assert body["id"].startswith("msg_" if provider == "anthropic" else "chatcmpl-")
    [record] = emu.requests()
    assert record["provider"] == provider and record["path"] == path
    assert record["body"]["model"] == model


def test_default_model_is_claude_opus_4_5(gateway: Gateway, emu: Emulator) -> None:
    assert chat(gateway).json()["model"] == "claude-opus-4-5"
    assert emu.requests()[0]["body"]["model"] == "claude-opus-4-5"


def test_content_joins_every_text_block(gateway: Gateway, emu: Emulator) -> None:
    emu.configure(blocks=["First block. ", "Second block."])
    assert chat(gateway).json()["content"] == "First block. Second block."


@pytest.mark.parametrize(
    ("model", "upstream_reason"), [("claude-opus-4-5", "max_tokens"), ("gpt-4o", "max_tokens")]
)
def test_stop_reason_is_normalised(gateway: Gateway, emu: Emulator, model: str, upstream_reason: str) -> None:
    emu.configure(stop_reason=upstream_reason)
    assert chat(gateway, model=model).json()["stop_reason"] == "max_tokens"


def test_system_messages_go_top_level_for_anthropic(gateway: Gateway, emu: Emulator) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert chat(gateway, messages=messages).status_code == 200
    body = emu.requests()[0]["body"]
    assert body["system"] == "You are terse."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_system_messages_stay_in_messages_for_openai(gateway: Gateway, emu: Emulator) -> None:
    messages = [{"role": "system", "content": "You are terse."}, USER]
    assert chat(gateway, model="gpt-4o", messages=messages).status_code == 200
    body = emu.requests()[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert "system" not in body


def test_temperature_and_max_tokens_reach_models_that_take_them(gateway: Gateway, emu: Emulator) -> None:
    chat(gateway, model="claude-opus-4-5", temperature=0.2, max_tokens=77)
    chat(gateway, model="gpt-4o", temperature=0.3, max_tokens=55)
    anthropic_body, openai_body = (r["body"] for r in emu.requests())
    assert anthropic_body["temperature"] == 0.2 and anthropic_body["max_tokens"] == 77
    assert openai_body["temperature"] == 0.3 and openai_body["max_tokens"] == 55


@pytest.mark.parametrize("model", ["claude-opus-4-7", "claude-sonnet-5", "claude-fable-5"])
def test_temperature_dropped_for_new_claude_models(gateway: Gateway, emu: Emulator, model: str) -> None:
    response = chat(gateway, model=model, temperature=0.5)
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Dropped-Params"] == "temperature"
    assert "temperature" not in emu.requests()[0]["body"]


def test_default_temperature_is_not_reported_as_dropped(gateway: Gateway, emu: Emulator) -> None:
    response = chat(gateway, model="claude-opus-4-7")
    assert response.status_code == 200, response.text
    assert "X-LLM-Dropped-Params" not in response.headers
    assert "temperature" not in emu.requests()[0]["body"]


@pytest.mark.parametrize("model", ["gpt-5", "o3-mini", "o1"])
def test_reasoning_models_get_max_completion_tokens(gateway: Gateway, emu: Emulator, model: str) -> None:
    response = chat(gateway, model=model, temperature=0.4, max_tokens=300)
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Dropped-Params"] == "temperature"
    body = emu.requests()[0]["body"]
    assert body["max_completion_tokens"] == 300
    assert "max_tokens" not in body and "temperature" not in body


def test_unsupported_parameter_is_refused_when_dropping_is_off(
    strict_gateway: Gateway, emu: Emulator
) -> None:
    response = chat(strict_gateway, model="claude-opus-4-7", temperature=0.5)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "unsupported_parameter"
    assert "temperature" in error["message"]
    assert emu.requests() == []


def test_unconfigured_provider_answers_503_naming_it(strict_gateway: Gateway, emu: Emulator) -> None:
    response = chat(strict_gateway, model="gpt-4o")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "provider_not_configured"
    assert "openai" in error["message"]
    assert emu.requests() == []
    # The other provider still works on the same instance.
    assert chat(strict_gateway, model="claude-opus-4-5").status_code == 200


def test_request_id_is_echoed_or_generated(gateway: Gateway, emu: Emulator) -> None:
    with gateway.client() as client:
        mine = client.post("/v1/chat", json={"messages": [USER]}, headers={"X-Request-ID": "abc-123.def"})
        bad = client.post(
            "/v1/chat", json={"messages": [USER]}, headers={"X-Request-ID": "bad id; " + "x" * 200}
        )
        failed = client.post("/v1/chat", json={"messages": []}, headers={"X-Request-ID": "trace-42"})
    assert mine.headers["X-Request-ID"] == "abc-123.def"
    assert bad.headers["X-Request-ID"].isalnum() and len(bad.headers["X-Request-ID"]) == 32
    assert failed.headers["X-Request-ID"] == "trace-42"
    assert failed.json()["error"]["request_id"] == "trace-42"
