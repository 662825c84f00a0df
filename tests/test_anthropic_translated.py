"""POST /v1/messages to an OpenAI model: the Anthropic request is translated to Chat Completions and the
answer back (what the emulator received is checked field by field), Claude Code's shapes included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.compat import (
    OPENAI_MODEL,
    PNG_B64,
    WEATHER_TOOL_ANTHROPIC,
    anthropic_client,
    only_upstream_body,
    upstream,
)
from tests.support import Emulator, Gateway, gateway_env, run_gateway

USER = {"role": "user", "content": "What is the weather in Paris?"}


def post(gateway: Gateway, **body: Any) -> httpx.Response:
    body.setdefault("model", OPENAI_MODEL)
    body.setdefault("max_tokens", 200)
    body.setdefault("messages", [USER])
    with gateway.client() as client:
        return client.post("/v1/messages", json=body)


@pytest.fixture(scope="module")
def strict_gateway(emulator: Emulator) -> Iterator[Gateway]:
    env = gateway_env(emulator, DROP_UNSUPPORTED_PARAMS="false", WEB_CONCURRENCY="1")
    with run_gateway(env) as gw:
        yield gw


def test_request_fields_map_to_openai(gateway: Gateway, emu: Emulator) -> None:
    response = post(
        gateway,
        system=[{"type": "text", "text": "Be terse."}],
        stop_sequences=["END"],
        temperature=0.4,
        tools=[WEATHER_TOOL_ANTHROPIC],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert response.status_code == 200, response.text
    sent = only_upstream_body(emu)
    assert sent["messages"][0]["role"] == "system" and "Be terse." in json.dumps(sent["messages"][0])
    assert sent["stop"] == ["END"]
    assert sent["temperature"] == 0.4
    assert sent["max_tokens"] == 200
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL_ANTHROPIC["input_schema"]


def test_reasoning_models_get_max_completion_tokens_and_reasoning_effort(
    gateway: Gateway, emu: Emulator
) -> None:
    response = post(gateway, model="o3", thinking={"type": "enabled", "budget_tokens": 2048})
    assert response.status_code == 200, response.text
    sent = only_upstream_body(emu)
    assert sent["max_completion_tokens"] == 200 and "max_tokens" not in sent
    assert sent["reasoning_effort"] in {"low", "medium", "high"}


def test_thinking_is_dropped_and_named_on_other_models(gateway: Gateway, emu: Emulator) -> None:
    response = post(
        gateway, thinking={"type": "enabled", "budget_tokens": 2048}, output_config={"effort": "high"}
    )
    assert response.status_code == 200, response.text
    dropped = response.headers["X-LLM-Dropped-Params"].split(",")
    assert dropped == ["thinking", "output_config.effort"]
    assert "reasoning_effort" not in only_upstream_body(emu)


def test_top_k_is_dropped_and_named(gateway: Gateway, emu: Emulator) -> None:
    response = post(gateway, top_k=5)
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Dropped-Params"] == "top_k"
    assert "top_k" not in only_upstream_body(emu)


def test_with_drop_unsupported_params_false_top_k_is_a_400(strict_gateway: Gateway, emu: Emulator) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client(strict_gateway).messages.create(
            model=OPENAI_MODEL,
            max_tokens=50,
            messages=[USER],
            extra_body={"top_k": 5},
        )
    assert "top_k" in str(caught.value)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert upstream(emu) == []


def test_claude_codes_max_tokens_is_clamped_to_the_model(gateway: Gateway, emu: Emulator) -> None:
    response = post(gateway, model="gpt-4o-mini", max_tokens=32000)
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Clamped-Params"] == "max_tokens"
    assert only_upstream_body(emu)["max_tokens"] == 16384


def test_mid_conversation_system_messages_stay_in_place(gateway: Gateway, emu: Emulator) -> None:
    messages = [
        USER,
        {"role": "assistant", "content": "Let me see."},
        {"role": "system", "content": "The user is in France."},
        {"role": "user", "content": "And tomorrow?"},
    ]
    response = post(gateway, system="Be terse.", messages=messages)
    assert response.status_code == 200, response.text
    roles = [m["role"] for m in only_upstream_body(emu)["messages"]]
    assert roles == ["system", "user", "assistant", "system", "user"]


def test_tool_results_become_tool_messages_before_the_users_text(gateway: Gateway, emu: Emulator) -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here you go."},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_9",
                    "content": [{"type": "text", "text": "sunny"}],
                },
            ],
        },
    ]
    response = post(gateway, messages=messages, tools=[WEATHER_TOOL_ANTHROPIC])
    assert response.status_code == 200, response.text
    sent = only_upstream_body(emu)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[1]["tool_calls"][0]["id"] == "call_9"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2]["tool_call_id"] == "call_9"


def test_base64_images_become_data_urls(gateway: Gateway, emu: Emulator) -> None:
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}]
    assert post(gateway, messages=[{"role": "user", "content": content}]).status_code == 200
    part = only_upstream_body(emu)["messages"][0]["content"][0]
    assert part == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}


def test_usage_is_not_counted_twice_and_stop_reasons_map_back(gateway: Gateway, emu: Emulator) -> None:
    emu.configure(cached_tokens=4, stop_reason="length")
    message = anthropic_client(gateway).messages.create(model=OPENAI_MODEL, max_tokens=50, messages=[USER])  # type: ignore[list-item]
    assert message.stop_reason == "max_tokens"
    assert message.usage.cache_read_input_tokens == 4
    assert message.usage.input_tokens >= 0


def test_stream_blocks_are_numbered_and_never_an_empty_text(gateway: Gateway, emu: Emulator) -> None:
    emu.script({"text": "", "tool_calls": [{"name": "get_weather", "input": {"city": "Paris"}}]})
    with gateway.client() as client:
        response = client.post(
            "/v1/messages",
            json={
                "model": OPENAI_MODEL,
                "max_tokens": 50,
                "messages": [USER],
                "stream": True,
                "tools": [WEATHER_TOOL_ANTHROPIC],
            },
        )
    events = []
    for block in response.text.split("\n\n"):
        lines = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":")
        )
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    starts = [data for name, data in events if name == "content_block_start"]
    assert [s["index"] for s in starts] == list(range(len(starts)))
    assert all(s["content_block"]["type"] != "text" for s in starts)
    [delta] = [data for name, data in events if name == "message_delta"]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
