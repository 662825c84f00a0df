"""POST /v1/chat/completions with the official openai SDK, on an OpenAI model (relayed) and on a Claude
model (translated): JSON, streams, tools and a tool loop, structured output, images, usage."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import BaseModel

from tests.compat import (
    MODELS,
    PNG_B64,
    WEATHER_CALL,
    WEATHER_TOOL_OPENAI,
    openai_client,
    upstream,
)
from tests.support import Emulator, Gateway, wait_until

USER = {"role": "user", "content": "What is the weather in Paris?"}


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_a_chat_completion(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.configure(text="Paris is the capital.")
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be terse."}, USER], max_tokens=50
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"]
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl")
    assert completion.model == model
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Paris is the capital."
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert len(upstream(emu)) == 1


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_deltas_and_usage_only_when_asked(
    gateway: Gateway, emu: Emulator, model: str, include_usage: bool
) -> None:
    emu.configure(text="one two three four", chunks=4)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(
        openai_client(gateway).chat.completions.create(model=model, messages=[USER], stream=True, **options)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert usage_chunks == [chunks[-1]] and chunks[-1].choices == []
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    else:
        assert usage_chunks == []
    # The gateway always asks for the usage, to count tokens.
    assert upstream(emu)[0]["body"].get("stream_options", {}).get("include_usage", True) is True


@pytest.mark.parametrize("model", MODELS)
def test_stream_ends_with_exactly_one_done(gateway: Gateway, emu: Emulator, model: str) -> None:
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions", json={"model": model, "messages": [USER], "stream": True}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block.strip()]
    assert events[-1] == "data: [DONE]" and response.text.count("[DONE]") == 1
    assert all(e.startswith(("data: ", ":")) for e in events)


@pytest.mark.parametrize("model", MODELS)
def test_tool_loop(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.script({"text": "Let me check.", "tool_calls": [WEATHER_CALL]}, {"text": "It is sunny in Paris."})
    client = openai_client(gateway)
    first = client.chat.completions.create(model=model, messages=[USER], tools=[WEATHER_TOOL_OPENAI])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    second = client.chat.completions.create(
        model=model,
        tools=[WEATHER_TOOL_OPENAI],
        messages=[
            USER,
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert len(upstream(emu)) == 2


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_calls_reassemble_in_the_sdk_helper(
    gateway: Gateway, emu: Emulator, model: str
) -> None:
    emu.script(
        {
            "text": "Checking both.",
            "tool_calls": [WEATHER_CALL, {"name": "get_weather", "input": {"city": "Lyon"}}],
        }
    )
    with openai_client(gateway).chat.completions.stream(
        model=model, messages=[USER], tools=[WEATHER_TOOL_OPENAI]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Lyon"}]
    assert len({c.id for c in calls}) == 2
    assert choice.message.content == "Checking both."


class City(BaseModel):
    name: str
    population: int
    coastal: bool


@pytest.mark.parametrize("model", MODELS)
def test_parse_with_a_pydantic_model(gateway: Gateway, emu: Emulator, model: str) -> None:
    completion = openai_client(gateway).chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Describe Paris"}], response_format=City
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City)


@pytest.mark.parametrize("model", MODELS)
def test_images_as_data_urls(gateway: Gateway, emu: Emulator, model: str) -> None:
    completion = openai_client(gateway).chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content
    body = upstream(emu)[0]["body"]
    assert PNG_B64 in json.dumps(body)


@pytest.mark.parametrize("model", MODELS)
def test_client_disconnect_closes_the_upstream(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.configure(chunks=100, chunk_delay_s=0.1)
    stream = openai_client(gateway).chat.completions.create(model=model, messages=[USER], stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    hung_up = time.time()
    record = wait_until(
        lambda: next((r for r in emu.requests() if r["outcome"] == "client_disconnected"), None), timeout=5
    )
    assert record["disconnected_at"] - hung_up < 1.5
    assert record["chunks_sent"] < 100
