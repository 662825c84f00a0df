"""The Anthropic/OpenAI emulator, driven over real HTTP by the official SDKs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support import Emulator, async_wait_until, run_emulator

USER_MSG: Any = [{"role": "user", "content": "say hello to the test"}]


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with run_emulator() as emulator:
        yield emulator.base_url
    output = emulator.output()
    # The emulator must never print request content.
    assert "say hello to the test" not in output, output
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


@pytest.fixture
def control(emulator_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator_url}/_emulator", timeout=5.0) as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture
async def claude(emulator_url: str) -> Any:
    async with anthropic.AsyncAnthropic(
        base_url=emulator_url, api_key="test-key", max_retries=0, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
async def gpt(emulator_url: str) -> Any:
    async with openai.AsyncOpenAI(
        base_url=f"{emulator_url}/v1", api_key="test-key", max_retries=0, timeout=10.0
    ) as client:
        yield client


def configure(control: httpx.Client, **config: Any) -> None:
    control.post("/config", json=config).raise_for_status()


def add_faults(control: httpx.Client, *faults: dict[str, Any], provider: str | None = None) -> None:
    control.post("/faults", json={"faults": list(faults), "provider": provider}).raise_for_status()


def records(control: httpx.Client) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = control.get("/requests").json()
    return result


async def wait_for_outcome(control: httpx.Client, outcome: str, timeout: float = 3.0) -> dict[str, Any]:
    def last_with_outcome() -> dict[str, Any] | None:
        recs = records(control)
        return recs[-1] if recs and recs[-1]["outcome"] == outcome else None

    try:
        return await async_wait_until(last_with_outcome, timeout=timeout)
    except TimeoutError:
        pytest.fail(f"no {outcome!r} outcome recorded: {records(control)}")


# -- Anthropic ---------------------------------------------------------------------------


async def test_anthropic_json(claude: anthropic.AsyncAnthropic, control: httpx.Client) -> None:
    configure(control, blocks=["First block.", "Second one here."])
    msg = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, system="be brief", messages=USER_MSG
    )
    assert msg.model == "claude-sonnet-4-6"
    assert [b.text for b in msg.content if b.type == "text"] == ["First block.", "Second one here."]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 7  # "be brief" + "say hello to the test"
    assert msg.usage.output_tokens == 5
    (rec,) = records(control)
    assert rec["provider"] == "anthropic" and rec["path"] == "/v1/messages"
    assert rec["body"]["system"] == "be brief"
    # anthropic SDK 2.x sends the api_key as a bearer token (the API also accepts x-api-key).
    assert rec["headers"]["authorization"] == f"Bearer {Emulator.fingerprint('test-key')}"
    assert rec["headers"]["anthropic-version"]
    assert rec["status"] == 200 and rec["outcome"] == "completed"


async def test_anthropic_stream_raw_events(claude: anthropic.AsyncAnthropic, control: httpx.Client) -> None:
    configure(control, text="one two three", chunks=5, stop_reason="max_tokens", ping_before_first=True)
    stream = await claude.messages.create(
        model="claude-opus-4-6", max_tokens=64, messages=USER_MSG, stream=True
    )
    types: list[str] = []
    text = ""
    async for event in stream:
        types.append(event.type)
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
        if event.type == "message_delta":
            assert event.delta.stop_reason == "max_tokens"
            assert event.usage.output_tokens == 5
    assert text == "one two three tok0 tok1"
    assert types == ["message_start", "content_block_start"] + ["content_block_delta"] * 5 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    rec = records(control)[-1]
    assert rec["outcome"] == "completed" and rec["chunks_sent"] == 5 and rec["stream"] is True


async def test_anthropic_stream_helper(claude: anthropic.AsyncAnthropic, control: httpx.Client) -> None:
    configure(control, text="a b c d e f", chunks=3)
    async with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=USER_MSG) as s:
        pieces = [t async for t in s.text_stream]
        final = await s.get_final_message()
    assert pieces == ["a b", " c d", " e f"]
    assert final.content[0].type == "text" and final.content[0].text == "a b c d e f"
    assert final.usage.output_tokens == 3 and final.usage.input_tokens == 5


async def test_anthropic_overloaded_with_retry_after(
    claude: anthropic.AsyncAnthropic, control: httpx.Client
) -> None:
    add_faults(control, {"status": 529, "retry_after": "7", "retry_after_ms": "7000"}, provider="anthropic")
    with pytest.raises(anthropic.InternalServerError) as exc_info:
        await claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG)
    err = exc_info.value
    assert err.status_code == 529
    assert err.response.headers["retry-after"] == "7"
    assert err.response.headers["retry-after-ms"] == "7000"
    assert err.type == "overloaded_error"
    assert isinstance(err.body, dict) and err.body["type"] == "error"
    # The queue is empty again: the next request succeeds.
    msg = await claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG)
    assert msg.content
    assert [r["status"] for r in records(control)] == [529, 200]


async def test_anthropic_auth_and_validation(
    claude: anthropic.AsyncAnthropic, emulator_url: str, control: httpx.Client
) -> None:
    with pytest.raises(anthropic.BadRequestError) as exc_info:
        await claude.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=64,
            messages=[{"role": "system", "content": "nope"}, *USER_MSG],
        )
    assert 'Unexpected role "system"' in str(exc_info.value.api_message)
    for model in (
        "claude-opus-4-7",
        "claude-opus-4-8-20270101",
        "claude-opus-5",
        "claude-sonnet-5-1",
        "claude-fable-5",
    ):
        with pytest.raises(anthropic.BadRequestError) as exc_info:
            await claude.messages.create(
                model=model, max_tokens=64, messages=USER_MSG, extra_body={"temperature": 0.2}
            )
        assert exc_info.value.api_message == "`temperature` is deprecated for this model."
        assert exc_info.value.type == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError, match="top_p"):
        await claude.messages.create(
            model="claude-opus-4-7", max_tokens=64, messages=USER_MSG, extra_body={"top_p": 0.9}
        )
    # Older models accept sampling parameters.
    await claude.messages.create(
        model="claude-opus-4-6", max_tokens=64, messages=USER_MSG, extra_body={"temperature": 0.2}
    )
    async with httpx.AsyncClient(base_url=emulator_url) as raw:
        resp = await raw.post("/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER_MSG})
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "authentication_error"
        resp = await raw.post(
            "/v1/messages", headers={"x-api-key": "k"}, json={"model": "m", "messages": USER_MSG}
        )
        assert resp.status_code == 400
        assert resp.json()["error"] == {
            "type": "invalid_request_error",
            "message": "max_tokens: Field required",
        }


async def test_anthropic_in_stream_error(claude: anthropic.AsyncAnthropic, control: httpx.Client) -> None:
    add_faults(control, {"fail_after_chunks": 0, "error_type": "overloaded_error"})
    stream = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG, stream=True
    )
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as exc_info:
        async for event in stream:
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start"]
    assert exc_info.value.type == "overloaded_error"
    rec = records(control)[-1]
    assert rec["outcome"] == "error" and rec["chunks_sent"] == 0 and rec["status"] == 200


async def test_anthropic_mid_stream_failure(claude: anthropic.AsyncAnthropic, control: httpx.Client) -> None:
    configure(control, chunks=10)
    add_faults(control, {"fail_after_chunks": 3})
    text = ""
    with pytest.raises(anthropic.APIStatusError) as exc_info:
        async with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG) as s:
            async for piece in s.text_stream:
                text += piece
    assert exc_info.value.type == "api_error"
    assert text == "Hello from the"
    assert records(control)[-1]["chunks_sent"] == 3


async def test_anthropic_drop(claude: anthropic.AsyncAnthropic, control: httpx.Client) -> None:
    add_faults(control, {"drop": True})
    with pytest.raises(anthropic.APIConnectionError) as exc_info:
        await claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG)
    assert not isinstance(exc_info.value, anthropic.APITimeoutError)
    rec = records(control)[-1]
    assert rec["outcome"] == "error" and rec["status"] is None


async def test_anthropic_hang_then_client_timeout(emulator_url: str, control: httpx.Client) -> None:
    add_faults(control, {"hang": True})
    async with anthropic.AsyncAnthropic(
        base_url=emulator_url, api_key="k", max_retries=0, timeout=0.5
    ) as client:
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG)
    rec = await wait_for_outcome(control, "client_disconnected")
    assert rec["status"] is None and rec["disconnected_at"] is not None


async def test_anthropic_client_closes_stream_early(
    claude: anthropic.AsyncAnthropic, control: httpx.Client
) -> None:
    configure(control, chunks=200, chunk_delay_s=0.02)
    stream = await claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG, stream=True
    )
    deltas = 0
    async for event in stream:
        if event.type == "content_block_delta":
            deltas += 1
            if deltas == 3:
                break
    await stream.close()
    closed_at = time.time()
    rec = await wait_for_outcome(control, "client_disconnected")
    assert rec["disconnected_at"] - closed_at < 1.0
    assert 3 <= rec["chunks_sent"] < 200
    chunks = rec["chunks_sent"]
    await asyncio.sleep(0.1)
    assert records(control)[-1]["chunks_sent"] == chunks  # generation stopped


# -- OpenAI ------------------------------------------------------------------------------


async def test_openai_json(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    configure(control, stop_reason="max_tokens")
    resp = await gpt.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "be nice"}, *USER_MSG], temperature=0.7
    )
    assert resp.object == "chat.completion" and resp.model == "gpt-4o"
    assert resp.choices[0].message.content == "Hello from the emulator."
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (7, 4)
    rec = records(control)[-1]
    assert rec["provider"] == "openai" and rec["headers"]["authorization"].startswith("Bearer sha256:")


async def test_openai_stream_with_usage(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    configure(control, blocks=["Part one.", " Part two."], ping_before_first=True)
    stream = await gpt.chat.completions.create(
        model="gpt-4o-mini", messages=USER_MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Part one. Part two."
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens == 5
    assert all(c.object == "chat.completion.chunk" for c in chunks)


async def test_openai_reasoning_model_rules(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        await gpt.chat.completions.create(model="o3-mini", messages=USER_MSG, temperature=0.7)
    err = exc_info.value
    assert err.param == "temperature" and err.code == "unsupported_value"
    assert err.body == {
        "message": "Unsupported value: 'temperature' does not support 0.7 with this model. "
        "Only the default (1) value is supported.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "unsupported_value",
    }
    with pytest.raises(openai.BadRequestError) as exc_info:
        await gpt.chat.completions.create(model="gpt-5-mini", messages=USER_MSG, max_tokens=10)
    assert exc_info.value.param == "max_tokens" and exc_info.value.code == "unsupported_parameter"
    # Allowed forms.
    await gpt.chat.completions.create(
        model="o4-mini", messages=USER_MSG, temperature=1, max_completion_tokens=10
    )
    await gpt.chat.completions.create(model="gpt-4.1", messages=USER_MSG, temperature=0.7, max_tokens=10)


async def test_openai_rate_limit_and_auth(
    gpt: openai.AsyncOpenAI, emulator_url: str, control: httpx.Client
) -> None:
    add_faults(control, {"status": 429, "retry_after_ms": "250"}, provider="openai")
    with pytest.raises(openai.RateLimitError) as exc_info:
        await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG)
    assert exc_info.value.response.headers["retry-after-ms"] == "250"
    assert exc_info.value.code == "rate_limit_exceeded"
    async with httpx.AsyncClient(base_url=emulator_url) as raw:
        resp = await raw.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER_MSG})
    assert resp.status_code == 401 and set(resp.json()["error"]) == {"message", "type", "param", "code"}


async def test_faults_are_per_provider(
    gpt: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, control: httpx.Client
) -> None:
    add_faults(control, {"status": 500}, provider="anthropic")
    await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG)  # not affected
    with pytest.raises(anthropic.InternalServerError):
        await claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=USER_MSG)
    stats = control.get("/stats").json()
    assert stats["requests"] == {"anthropic": 1, "openai": 1} and stats["in_progress"] == 0


async def test_openai_mid_stream_failure(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    configure(control, chunks=8)
    add_faults(control, {"fail_after_chunks": 2}, provider="openai")
    stream = await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as exc_info:
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert not isinstance(exc_info.value, openai.APIStatusError)
    assert exc_info.value.type == "server_error"
    assert text == "Hello from"
    rec = records(control)[-1]
    assert rec["outcome"] == "error" and rec["chunks_sent"] == 2


async def test_openai_drop_and_delay(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    add_faults(control, {"drop": True}, {"delay_s": 0.2}, provider="openai")
    with pytest.raises(openai.APIConnectionError) as exc_info:
        await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG)
    assert not isinstance(exc_info.value, openai.APITimeoutError)
    started = time.monotonic()
    await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG)
    assert time.monotonic() - started >= 0.2


async def test_openai_client_closes_stream_early(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    configure(control, chunks=200, chunk_delay_s=0.02, first_token_delay_s=0.05)
    stream = await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    rec = await wait_for_outcome(control, "client_disconnected")
    assert rec["status"] == 200 and rec["chunks_sent"] < 200


async def test_many_concurrent_slow_streams(gpt: openai.AsyncOpenAI, control: httpx.Client) -> None:
    configure(control, chunks=5, chunk_delay_s=0.1)

    async def one() -> str:
        stream = await gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    started = time.monotonic()
    results = await asyncio.gather(*(one() for _ in range(200)))
    assert set(results) == {"Hello from the emulator. tok0"}
    assert time.monotonic() - started < 5
    records_bytes = sum(r["body_bytes"] for r in records(control))
    assert control.get("/stats").json() == {
        "requests": {"anthropic": 0, "openai": 200},
        "in_progress": 0,
        "recorded": 200,
        "recorded_body_bytes": records_bytes,
    }


# -- control plane -------------------------------------------------------------------------


def test_control_plane_shapes(control: httpx.Client) -> None:
    cfg = control.post("/config", json={"text": "x y", "chunk_delay_s": 0.5}).json()
    assert cfg == {
        "text": "x y",
        "chunks": None,
        "blocks": None,
        "first_token_delay_s": 0.0,
        "chunk_delay_s": 0.5,
        "stop_reason": "end_turn",
        "ping_before_first": False,
        "tool_calls": None,
        "thinking_text": "Let me think about this step by step.",
        "cached_tokens": 0,
        "cache_creation_tokens": 0,
    }
    assert control.post("/config", json={"bogus": 1}).status_code == 400
    assert control.post("/config", json={"chunks": 0}).status_code == 400
    queued = control.post(
        "/faults", json={"faults": [{"status": 503}, {"hang": True}], "provider": "openai"}
    ).json()
    assert queued["queued"] == 2 and queued["faults"][0]["provider"] == "openai"
    assert control.post("/faults", json={"faults": [{"status": 200}]}).status_code == 400
    control.post("/reset").raise_for_status()
    assert control.get("/faults").json()["queued"] == 0
    assert control.get("/config").json()["text"] == "Hello from the emulator."
    assert control.get("/requests").json() == []
    assert control.get("/stats").json() == {
        "requests": {"anthropic": 0, "openai": 0},
        "in_progress": 0,
        "recorded": 0,
        "recorded_body_bytes": 0,
    }
