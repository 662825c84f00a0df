"""POST /v1/chat/completions to a Claude model: the OpenAI request is translated to Anthropic's Messages
API and the answer back (what the emulator received is checked field by field)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.compat import (
    CLAUDE_MODEL,
    PNG_B64,
    WEATHER_CALL,
    WEATHER_TOOL_OPENAI,
    only_upstream_body,
    openai_client,
    upstream,
)
from tests.support import Emulator, Gateway, gateway_env, run_gateway

USER = {"role": "user", "content": "What is the weather in Paris?"}


def post(gateway: Gateway, **body: Any) -> httpx.Response:
    body.setdefault("model", CLAUDE_MODEL)
    body.setdefault("messages", [USER])
    with gateway.client() as client:
        return client.post("/v1/chat/completions", json=body)


@pytest.fixture(scope="module")
def strict_gateway(emulator: Emulator) -> Iterator[Gateway]:
    env = gateway_env(emulator, DROP_UNSUPPORTED_PARAMS="false", WEB_CONCURRENCY="1")
    with run_gateway(env) as gw:
        yield gw


def test_request_fields_map_to_anthropic(gateway: Gateway, emu: Emulator) -> None:
    response = post(
        gateway,
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": "No lists."},
            USER,
        ],
        max_completion_tokens=300,
        stop=["END"],
        temperature=0.5,
        top_p=0.9,
        user="user-7",
        tools=[WEATHER_TOOL_OPENAI],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert response.status_code == 200, response.text
    sent = only_upstream_body(emu)
    system = (
        sent["system"] if isinstance(sent["system"], str) else " ".join(b["text"] for b in sent["system"])
    )
    assert "Be terse." in system and "No lists." in system
    assert all(m["role"] != "system" for m in sent["messages"])
    assert sent["max_tokens"] == 300
    assert sent["stop_sequences"] == ["END"]
    assert sent["temperature"] == 0.5 and sent["top_p"] == 0.9
    assert sent["metadata"] == {"user_id": "user-7"}
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_a_default_max_tokens_is_sent_when_the_client_gives_none(gateway: Gateway, emu: Emulator) -> None:
    assert post(gateway).status_code == 200
    assert only_upstream_body(emu)["max_tokens"] == 4096


def test_max_tokens_above_the_models_limit_is_clamped(gateway: Gateway, emu: Emulator) -> None:
    response = post(gateway, max_tokens=100_000)
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Clamped-Params"] == "max_tokens"
    assert only_upstream_body(emu)["max_tokens"] == 64_000


def test_parameters_without_an_equivalent_are_dropped_and_named(gateway: Gateway, emu: Emulator) -> None:
    response = post(gateway, seed=1, presence_penalty=0.5, logprobs=True, n=1)
    assert response.status_code == 200, response.text
    assert set(response.headers["X-LLM-Dropped-Params"].split(",")) == {
        "seed",
        "presence_penalty",
        "logprobs",
    }
    sent = only_upstream_body(emu)
    assert not {"seed", "presence_penalty", "logprobs", "n"} & set(sent)


def test_with_drop_unsupported_params_false_they_are_a_400_naming_them(
    strict_gateway: Gateway, emu: Emulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(strict_gateway).chat.completions.create(model=CLAUDE_MODEL, messages=[USER], seed=3)  # type: ignore[list-item]
    assert "seed" in caught.value.message
    assert upstream(emu) == []


def test_finish_reasons_and_cache_usage_map_back(gateway: Gateway, emu: Emulator) -> None:
    emu.configure(stop_reason="max_tokens", cached_tokens=7, cache_creation_tokens=3)
    completion = openai_client(gateway).chat.completions.create(model=CLAUDE_MODEL, messages=[USER])  # type: ignore[list-item]
    assert completion.choices[0].finish_reason == "length"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 7
    record = upstream(emu)[0]
    assert record["body"]["model"] == CLAUDE_MODEL
    assert usage.prompt_tokens >= 10  # uncached input + cache read + cache creation


def test_tool_turns_map_to_tool_use_and_merged_tool_results(gateway: Gateway, emu: Emulator) -> None:
    emu.script({"text": "Both are sunny."})
    messages = [
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny too"},
    ]
    response = post(gateway, messages=messages, tools=[WEATHER_TOOL_OPENAI])
    assert response.status_code == 200, response.text
    sent = only_upstream_body(emu)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    uses = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    assert [(u["id"], u["input"]) for u in uses] == [
        ("call_1", {"city": "Paris"}),
        ("call_2", {"city": "Lyon"}),
    ]
    results = sent[2]["content"]
    assert [r["type"] for r in results] == ["tool_result", "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["call_1", "call_2"]


def test_invalid_tool_arguments_are_a_400_naming_the_field(gateway: Gateway, emu: Emulator) -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "x"},
    ]
    response = post(gateway, messages=messages)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "arguments" in (error["param"] or "") + error["message"]
    assert "not json" not in response.text
    assert upstream(emu) == []


def test_images_map_to_base64_and_url_sources(gateway: Gateway, emu: Emulator) -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    assert post(gateway, messages=[{"role": "user", "content": content}]).status_code == 200
    blocks = only_upstream_body(emu)["messages"][0]["content"]
    images = [b["source"] for b in blocks if b["type"] == "image"]
    assert images == [
        {"type": "base64", "media_type": "image/png", "data": PNG_B64},
        {"type": "url", "url": "https://example.com/cat.jpg"},
    ]


def test_an_unsupported_image_type_is_a_400(gateway: Gateway, emu: Emulator) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]
    response = post(gateway, messages=[{"role": "user", "content": content}])
    assert response.status_code == 400
    assert "image_url" in json.dumps(response.json())
    assert upstream(emu) == []


def test_reasoning_effort_becomes_a_thinking_budget(gateway: Gateway, emu: Emulator) -> None:
    assert post(gateway, reasoning_effort="medium", max_tokens=20000).status_code == 200
    thinking = only_upstream_body(emu)["thinking"]
    assert thinking["type"] == "enabled" and 1024 <= thinking["budget_tokens"] < 20000


def test_streamed_tool_calls_are_indexed_over_tool_calls(gateway: Gateway, emu: Emulator) -> None:
    emu.script({"text": "Checking.", "tool_calls": [WEATHER_CALL, {"name": "noop", "input": {}}]})
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": CLAUDE_MODEL, "messages": [USER], "stream": True, "tools": [WEATHER_TOOL_OPENAI]},
        )
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    fragments = [tc for c in chunks for ch in c["choices"] for tc in (ch["delta"].get("tool_calls") or [])]
    assert {f["index"] for f in fragments} == {0, 1}
    firsts = [f for f in fragments if "id" in f]
    assert [f["index"] for f in firsts] == [0, 1]
    assert all(f["type"] == "function" and f["function"]["name"] for f in firsts)
    assert all("name" not in f.get("function", {}) for f in fragments if "id" not in f)
    arguments = {
        i: "".join(f["function"].get("arguments", "") for f in fragments if f["index"] == i) for i in (0, 1)
    }
    assert json.loads(arguments[0]) == {"city": "Paris"} and json.loads(arguments[1]) == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert response.text.count("[DONE]") == 1
