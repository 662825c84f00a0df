"""The emulator's tools, images, count_tokens and models, driven by the official SDKs over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support import Emulator, run_emulator

USER_MSG: Any = [{"role": "user", "content": "what is the weather in Paris"}]
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
}
OPENAI_WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
TWO_CALLS: Any = [
    {"name": "get_weather", "input": {"city": "Paris", "days": 2}},
    {"name": "get_time", "input": {"zone": "Europe/Paris"}},
]
PNG = Emulator.TINY_PNG_B64


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with run_emulator() as emu:
        yield emu
    output = emu.output()
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


@pytest.fixture
def claude(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emulator.anthropic_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
def gpt(emulator: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.openai_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


# -- tool calls: Anthropic ------------------------------------------------------------------------


def test_anthropic_scripted_tool_calls_json(claude: anthropic.Anthropic, emu: Emulator) -> None:
    emu.configure(text="Let me check.", tool_calls=TWO_CALLS)
    msg = claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=USER_MSG)
    assert [b.type for b in msg.content] == ["text", "tool_use", "tool_use"]
    assert msg.content[0].type == "text" and msg.content[0].text == "Let me check."
    calls = [b for b in msg.content if b.type == "tool_use"]
    assert [(c.name, c.input) for c in calls] == [(t["name"], t["input"]) for t in TWO_CALLS]
    assert all(c.id.startswith("toolu_") for c in calls) and calls[0].id != calls[1].id
    assert msg.stop_reason == "tool_use"
    single = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=USER_MSG,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [b.type for b in single.content] == ["text", "tool_use"]
    emu.script({"tool_calls": TWO_CALLS})
    none = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=USER_MSG,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "none"},
    )
    assert [b.type for b in none.content] == ["text"] and none.stop_reason == "end_turn"


def test_anthropic_tool_calls_streamed_in_pieces(claude: anthropic.Anthropic, emu: Emulator) -> None:
    emu.configure(text="Let me check.", tool_calls=TWO_CALLS)
    with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=USER_MSG) as stream:
        events = list(stream)
        final = stream.get_final_message()
    pieces = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert pieces[0] == ""  # as the real API: an empty first piece
    assert len([p for p in pieces if p]) >= 4  # each input split in several pieces
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["text", "tool_use", "tool_use"]
    calls = [b for b in final.content if b.type == "tool_use"]
    assert [(c.name, c.input) for c in calls] == [(t["name"], t["input"]) for t in TWO_CALLS]
    assert final.stop_reason == "tool_use"


def test_anthropic_tool_loop_with_scripted_turns(claude: anthropic.Anthropic, emu: Emulator) -> None:
    emu.script({"tool_calls": [TWO_CALLS[0]]}, {"text": "It is sunny in Paris."})
    messages: Any = list(USER_MSG)
    first = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=messages, tools=[WEATHER_TOOL]
    )
    assert [b.type for b in first.content] == ["tool_use"] and first.stop_reason == "tool_use"
    call = first.content[0]
    assert call.type == "tool_use"
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}],
        },
    ]
    second = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.content[0].type == "text" and second.content[0].text == "It is sunny in Paris."
    assert second.stop_reason == "end_turn"
    # Nothing scripted any more: an answer to tool results quotes them, so loops end by themselves.
    third = claude.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=messages)
    assert third.content[0].type == "text" and third.content[0].text == "The tool returned: sunny, 21C"
    recs = emu.requests()
    assert recs[0]["turn"]["tool_calls"][0]["name"] == "get_weather" and recs[2]["turn"] is None


def test_anthropic_forced_tool_choice_follows_the_schema(claude: anthropic.Anthropic, emu: Emulator) -> None:
    msg = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=USER_MSG,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    [call] = msg.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert isinstance(call.input, dict)
    assert (
        isinstance(call.input["city"], str)
        and isinstance(call.input["days"], int)
        and call.input["days"] >= 1
    )


# -- tool calls: OpenAI ---------------------------------------------------------------------------


def test_openai_scripted_tool_calls_json(gpt: openai.OpenAI, emu: Emulator) -> None:
    emu.configure(text="Let me check.", tool_calls=TWO_CALLS)
    resp = gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, tools=[OPENAI_WEATHER_TOOL])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls if c.type == "function"] == [
        (t["name"], t["input"]) for t in TWO_CALLS
    ]
    assert all(c.id.startswith("call_") for c in calls)
    single = gpt.chat.completions.create(
        model="gpt-4o", messages=USER_MSG, tools=[OPENAI_WEATHER_TOOL], parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls or []) == 1
    none = gpt.chat.completions.create(
        model="gpt-4o", messages=USER_MSG, tools=[OPENAI_WEATHER_TOOL], tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"
    assert none.choices[0].message.content == "Let me check."


def test_openai_tool_only_answer_has_null_content(gpt: openai.OpenAI, emu: Emulator) -> None:
    emu.script({"tool_calls": [TWO_CALLS[0]]})
    resp = gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG)
    assert resp.choices[0].message.content is None
    assert resp.choices[0].message.tool_calls and resp.choices[0].finish_reason == "tool_calls"


def test_openai_tool_calls_streamed_in_fragments(gpt: openai.OpenAI, emu: Emulator) -> None:
    emu.configure(text="Let me check.", tool_calls=TWO_CALLS)
    raw = list(gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, stream=True))
    fragments = [tc for c in raw if c.choices for tc in c.choices[0].delta.tool_calls or []]
    firsts = [f for f in fragments if f.id is not None]
    assert [f.index for f in firsts] == [0, 1]
    assert all(f.type == "function" and f.function and f.function.name for f in firsts)
    later = [f for f in fragments if f.id is None]
    assert all(f.function and f.function.name is None and f.function.arguments for f in later)
    assert len(later) >= 4
    assert raw[-1].choices[0].finish_reason == "tool_calls"
    # The SDK's stream helper reassembles them.
    with gpt.chat.completions.stream(model="gpt-4o", messages=USER_MSG) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []] == [
        (t["name"], t["input"]) for t in TWO_CALLS
    ]


def test_openai_tool_loop(gpt: openai.OpenAI, emu: Emulator) -> None:
    emu.script({"tool_calls": [TWO_CALLS[0]]}, provider="openai")
    messages: Any = list(USER_MSG)
    first = gpt.chat.completions.create(model="gpt-4o", messages=messages, tools=[OPENAI_WEATHER_TOOL])
    [call] = first.choices[0].message.tool_calls or []
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = gpt.chat.completions.create(model="gpt-4o", messages=messages, tools=[OPENAI_WEATHER_TOOL])
    assert second.choices[0].message.content == "The tool returned: sunny, 21C"
    assert second.choices[0].finish_reason == "stop"


def test_openai_forced_tool_choice(gpt: openai.OpenAI, emu: Emulator) -> None:
    resp = gpt.chat.completions.create(
        model="gpt-4o",
        messages=USER_MSG,
        tools=[OPENAI_WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    [call] = resp.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) == {"city", "days"} and args["days"] >= 1


# -- images ---------------------------------------------------------------------------------------


def _anthropic_image(source: dict[str, Any]) -> Any:
    return [
        {"role": "user", "content": [{"type": "image", "source": source}, {"type": "text", "text": "what?"}]}
    ]


def test_anthropic_images(claude: anthropic.Anthropic, emu: Emulator) -> None:
    for source in (
        {"type": "base64", "media_type": "image/png", "data": PNG},
        {"type": "url", "url": "https://example.com/cat.png"},
    ):
        msg = claude.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=_anthropic_image(source)
        )
        assert msg.content
    bad: list[tuple[dict[str, Any], str]] = [
        ({"type": "base64", "media_type": "image/bmp", "data": PNG}, "media_type: Input should be"),
        ({"type": "base64", "media_type": "image/png", "data": "%%%"}, "Invalid base64 data"),
        ({"type": "base64", "media_type": "image/png", "data": ""}, "data: Field required"),
        ({"type": "base64", "media_type": "image/jpeg", "data": PNG}, "appears to be a image/png image"),
        ({"type": "url", "url": "ftp://example.com/cat.png"}, "url: Input should be a valid URL"),
    ]
    for source, message in bad:
        with pytest.raises(anthropic.BadRequestError) as exc_info:
            claude.messages.create(
                model="claude-sonnet-4-6", max_tokens=10, messages=_anthropic_image(source)
            )
        assert message in str(exc_info.value.api_message)
        assert str(exc_info.value.api_message).startswith("messages.0.content.0.image.source")
        assert exc_info.value.type == "invalid_request_error"


def _openai_image(url: str) -> Any:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


def test_openai_images(gpt: openai.OpenAI, emu: Emulator) -> None:
    for url in (f"data:image/png;base64,{PNG}", "https://example.com/cat.png"):
        resp = gpt.chat.completions.create(model="gpt-4o", messages=_openai_image(url))
        assert resp.choices[0].message.content
    bad = [
        (f"data:image/bmp;base64,{PNG}", "unsupported MIME type 'image/bmp'"),
        ("data:image/png;base64,bm90IGFuIGltYWdl", "You uploaded an unsupported image"),
        ("data:image/png;base64,", "You uploaded an unsupported image"),
        ("file:///etc/passwd", "Expected a valid URL"),
    ]
    for url, message in bad:
        with pytest.raises(openai.BadRequestError) as exc_info:
            gpt.chat.completions.create(model="gpt-4o", messages=_openai_image(url))
        assert message in exc_info.value.message
        assert exc_info.value.param == "messages[0].content[1].image_url.url"
    with pytest.raises(openai.BadRequestError, match="only allowed for messages with role 'user'"):
        gpt.chat.completions.create(
            model="gpt-4o",
            messages=[
                *USER_MSG,
                {"role": "assistant", "content": _openai_image(f"data:image/png;base64,{PNG}")[0]["content"]},
            ],
        )


# -- count_tokens and models -----------------------------------------------------------------------


def test_count_tokens(claude: anthropic.Anthropic, emu: Emulator) -> None:
    counted = claude.messages.count_tokens(model="claude-sonnet-4-6", system="be brief", messages=USER_MSG)
    assert counted.input_tokens == 8
    with_tools = claude.messages.count_tokens(
        model="claude-sonnet-4-6", messages=USER_MSG, tools=[WEATHER_TOOL]
    )
    assert with_tools.input_tokens > 6
    with pytest.raises(anthropic.BadRequestError, match="messages: Field required"):
        claude.messages.count_tokens(model="claude-sonnet-4-6", messages=anthropic.omit)  # type: ignore[arg-type]
    [*_, last] = emu.requests()
    assert last["path"] == "/v1/messages/count_tokens" and last["status"] == 400


def test_models_in_both_shapes(claude: anthropic.Anthropic, gpt: openai.OpenAI, emu: Emulator) -> None:
    openai_ids = [m.id for m in gpt.models.list()]
    assert {"gpt-4o", "gpt-4o-mini", "o3"} <= set(openai_ids)
    assert not any(i.startswith("claude") for i in openai_ids)
    assert gpt.models.retrieve("gpt-4o-mini").owned_by == "system"
    with pytest.raises(openai.NotFoundError):
        gpt.models.retrieve("gpt-nope")
    page = claude.models.list(limit=2)
    assert [m.type for m in page.data] == ["model", "model"] and page.has_more is True
    all_claude = [m.id for m in claude.models.list(limit=3)]  # the SDK follows has_more/last_id
    assert all_claude[:2] == [m.id for m in page.data]
    assert len(all_claude) == len(set(all_claude)) >= 6 and all(i.startswith("claude") for i in all_claude)
    info = claude.models.retrieve("claude-sonnet-4-6")
    assert info.display_name == "Claude Sonnet 4.6" and info.max_tokens == 64_000
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("claude-nope")
    before = claude.models.list(before_id=all_claude[2], limit=5)
    assert [m.id for m in before.data] == all_claude[:2] and before.has_more is False
    # The catalogue is configurable.
    emu.set_models(
        {"id": "claude-test-1", "display_name": "Test", "max_output_tokens": 100}, {"id": "gpt-test"}
    )
    assert [m.id for m in claude.models.list()] == ["claude-test-1"]
    assert [m.id for m in gpt.models.list()] == ["gpt-test"]
    with pytest.raises(anthropic.BadRequestError, match="100, which is the maximum"):
        claude.messages.create(model="claude-test-1", max_tokens=101, messages=USER_MSG)
    emu.reset()
    assert "gpt-4o" in [m.id for m in gpt.models.list()]
    raw = httpx.get(
        f"{emu.base_url}/v1/models?limit=1000", headers={"anthropic-version": "2023-06-01", "x-api-key": "k"}
    )
    assert raw.status_code == 200 and raw.json()["first_id"] == raw.json()["data"][0]["id"]
    [rec] = [r for r in emu.requests() if r["query"] == "limit=1000"]
    assert rec["method"] == "GET" and rec["headers"]["x-api-key"] == Emulator.fingerprint("k")


def test_control_plane_refuses_bad_scripts(emu: Emulator) -> None:
    control = httpx.Client(base_url=f"{emu.base_url}/_emulator", timeout=5)
    with control:
        for body in (
            {"turns": [{}]},
            {"turns": [{"tool_calls": [{"input": {}}]}]},
            {"turns": [{"tool_calls": [{"name": "bad name!"}]}]},
            {"turns": [{"text": "x", "bogus": 1}]},
            {"turns": [{"text": "x"}], "provider": "gemini"},
        ):
            assert control.post("/turns", json=body).status_code == 400, body
        assert control.post("/config", json={"tool_calls": [{"name": "f", "input": "x"}]}).status_code == 400
        assert control.post("/config", json={"cached_tokens": -1}).status_code == 400
        assert control.post("/models", json={"models": [{"id": "a"}, {"id": "a"}]}).status_code == 400
        assert control.post("/models", json={"models": [{"id": "a", "provider": "x"}]}).status_code == 400
        queued = control.post(
            "/turns", json={"turns": [{"text": "one"}, {"text": "two"}], "provider": "openai"}
        )
        assert queued.json()["queued"] == 2
        assert control.delete("/turns").json()["queued"] == 0
