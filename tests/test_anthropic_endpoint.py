"""POST /v1/messages and /v1/messages/count_tokens with the official anthropic SDK, on a Claude model
(relayed) and on an OpenAI model (translated): JSON, streams, tools and a tool loop, images, auth."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.compat import (
    CLAUDE_MODEL,
    MODELS,
    PNG_B64,
    WEATHER_CALL,
    WEATHER_TOOL_ANTHROPIC,
    anthropic_client,
    upstream,
)
from tests.support import Emulator, Gateway, wait_until

USER: Any = {"role": "user", "content": "What is the weather in Paris?"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("bearer", [False, True])
def test_create_answers_a_message(gateway: Gateway, emu: Emulator, model: str, bearer: bool) -> None:
    emu.configure(text="Paris is the capital.")
    raw = anthropic_client(gateway, bearer=bearer).messages.with_raw_response.create(
        model=model, max_tokens=100, system="Be terse.", messages=[USER]
    )
    message = raw.parse()
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Paris is the capital."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_text_and_final_message(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.configure(text="one two three four", chunks=4)
    with anthropic_client(gateway).messages.stream(model=model, max_tokens=100, messages=[USER]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "one two three four"
    assert len(texts) >= 2
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == "one two three four"  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_uses_named_events(gateway: Gateway, emu: Emulator, model: str) -> None:
    with gateway.client() as client:
        response = client.post(
            "/v1/messages", json={"model": model, "max_tokens": 50, "messages": [USER], "stream": True}
        )
    assert response.headers["request-id"]
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "content_block_start" in names and "message_delta" in names


@pytest.mark.parametrize("model", MODELS)
def test_tool_loop(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.script({"text": "Let me check.", "tool_calls": [WEATHER_CALL]}, {"text": "It is sunny in Paris."})
    client = anthropic_client(gateway)
    first = client.messages.create(
        model=model, max_tokens=200, messages=[USER], tools=[WEATHER_TOOL_ANTHROPIC]
    )
    assert first.stop_reason == "tool_use"
    [text, use] = first.content
    assert text.type == "text" and text.text == "Let me check."
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    second = client.messages.create(
        model=model,
        max_tokens=200,
        tools=[WEATHER_TOOL_ANTHROPIC],
        messages=[
            USER,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "It is sunny in Paris."  # type: ignore[union-attr]


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_use(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.script(
        {
            "text": "Checking.",
            "tool_calls": [WEATHER_CALL, {"name": "get_weather", "input": {"city": "Nice"}}],
        }
    )
    with anthropic_client(gateway).messages.stream(
        model=model, max_tokens=200, messages=[USER], tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Nice"}]


@pytest.mark.parametrize("model", MODELS)
def test_images(gateway: Gateway, emu: Emulator, model: str) -> None:
    message = anthropic_client(gateway).messages.create(
        model=model,
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                    },
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
    )
    assert message.content
    assert PNG_B64 in str(upstream(emu)[0]["body"])


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(gateway: Gateway, emu: Emulator, model: str) -> None:
    raw = anthropic_client(gateway).messages.with_raw_response.count_tokens(model=model, messages=[USER])
    assert raw.parse().input_tokens > 0
    if model == CLAUDE_MODEL:
        assert "x-llm-token-count" not in raw.headers
        assert [r["path"] for r in emu.requests()] == ["/v1/messages/count_tokens"]
    else:
        assert raw.headers["x-llm-token-count"] == "estimate"
        assert emu.requests() == []


@pytest.mark.parametrize("model", MODELS)
def test_client_disconnect_closes_the_upstream(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.configure(chunks=100, chunk_delay_s=0.1)
    with anthropic_client(gateway).messages.stream(model=model, max_tokens=100, messages=[USER]) as stream:
        for _ in stream.text_stream:
            break
    hung_up = time.time()
    record = wait_until(
        lambda: next((r for r in emu.requests() if r["outcome"] == "client_disconnected"), None), timeout=5
    )
    assert record["disconnected_at"] - hung_up < 1.5
    assert record["chunks_sent"] < 100
