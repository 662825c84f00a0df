"""The OpenAI codec's streams: the encoder's output read by the openai SDK, the decoder, round trips."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api.chat_model import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    StreamEvent,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgumentsDelta,
    ToolCall,
    Usage,
)
from llm_api.codecs import WRONG_SHAPE
from llm_api.codecs.openai_chat import StreamDecoder, StreamEncoder
from llm_api.errors import UpstreamError, UpstreamRateLimited, UpstreamUnavailable
from tests.openai_codec_support import frames, golden, sdk_accumulate, sdk_chunks

START_USAGE = Usage(input_tokens=11, cache_read_tokens=4)
FINAL_USAGE = Usage(input_tokens=11, output_tokens=9, cache_read_tokens=4)


def encoder(include_usage: bool = True) -> StreamEncoder:
    return StreamEncoder(id="msg_01abc", model="claude-x", created=1764576000, include_usage=include_usage)


def text_block(index: int, *pieces: str) -> list[StreamEvent]:
    return [BlockStart(index, Text("")), *(TextDelta(index, piece) for piece in pieces), BlockStop(index)]


def tool_block(index: int, id: str, name: str, *pieces: str) -> list[StreamEvent]:
    start = BlockStart(index, ToolCall(id, name))
    return [start, *(ToolArgumentsDelta(index, piece) for piece in pieces), BlockStop(index)]


MIXED: list[StreamEvent] = [
    MessageStart("msg_01abc", "claude-x", START_USAGE),
    BlockStart(0, Thinking()),
    ThinkingDelta(0, "secret reasoning"),
    ThinkingDelta(0, signature="sig"),
    BlockStop(0),
    *text_block(1, "Let me ", "", "check."),
    *tool_block(2, "toolu_a", "read", "", '{"pa', 'th": "/x"}'),
    *tool_block(3, "toolu_b", "ls"),
    *text_block(4, "and more"),
    *tool_block(5, "toolu_c", "grep", '{"q": 1}'),
    MessageDelta("tool_use", FINAL_USAGE),
]


def encode_all(events: Sequence[StreamEvent], *, include_usage: bool = True, batch: int = 3) -> bytes:
    enc = encoder(include_usage)
    out = b"".join(enc.encode(events[i : i + batch]) for i in range(0, len(events), batch))
    return out + enc.done()


def test_golden_stream() -> None:
    golden("stream_mixed.chunks", frames(encode_all(MIXED)))


def test_stream_rules_on_the_wire() -> None:
    chunks = frames(encode_all(MIXED))
    assert chunks[-1] == "[DONE]" and chunks.count("[DONE]") == 1
    body = chunks[:-1]
    assert {c["id"] for c in body} == {"chatcmpl-msg_01abc"}
    assert {c["created"] for c in body} == {1764576000}
    assert {c["object"] for c in body} == {"chat.completion.chunk"}
    assert body[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in body[1:] if c["choices"])
    # Thinking is never sent.
    assert "secret reasoning" not in json.dumps(chunks) and "sig" not in json.dumps(chunks)
    fragments = [f for c in body if c["choices"] for f in c["choices"][0]["delta"].get("tool_calls", ())]
    assert [f["index"] for f in fragments] == [0, 0, 0, 1, 1, 2, 2]
    seen: set[int] = set()
    for fragment in fragments:
        if fragment["index"] not in seen:
            seen.add(fragment["index"])
            assert set(fragment) == {"index", "id", "type", "function"}
            assert fragment["type"] == "function" and fragment["function"]["arguments"] == ""
            assert set(fragment["function"]) == {"name", "arguments"}
        else:
            assert set(fragment) == {"index", "function"} and set(fragment["function"]) == {"arguments"}
            assert fragment["function"]["arguments"] != ""
    assert fragments[4]["function"]["arguments"] == "{}"  # ls: no arguments at all
    finish = body[-2]
    assert finish["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    assert all(c["choices"][0]["finish_reason"] is None for c in body[:-2])
    usage = body[-1]
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 15,
        "completion_tokens": 9,
        "total_tokens": 24,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_the_sdk_accumulates_the_stream() -> None:
    final = sdk_accumulate(encode_all(MIXED))
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check.and more"
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or ()]
    assert calls == [
        ("toolu_a", "read", '{"path": "/x"}'),
        ("toolu_b", "ls", "{}"),
        ("toolu_c", "grep", '{"q": 1}'),
    ]
    assert final.usage is not None and final.usage.prompt_tokens == 15 and final.usage.completion_tokens == 9


def test_without_include_usage_there_is_no_usage_chunk() -> None:
    chunks = frames(encode_all(MIXED, include_usage=False))
    assert chunks[-1] == "[DONE]"
    assert all(c["choices"] for c in chunks[:-1])
    assert all("usage" not in c for c in chunks[:-1])


@pytest.mark.parametrize(
    ("stop_reason", "tools", "finish_reason"),
    [
        ("end_turn", False, "stop"),
        ("stop_sequence", False, "stop"),
        ("max_tokens", False, "length"),
        ("refusal", False, "content_filter"),
        ("pause_turn", False, "stop"),
        (None, False, "stop"),
        ("end_turn", True, "tool_calls"),
        ("tool_use", True, "tool_calls"),
        ("max_tokens", True, "length"),
    ],
)
def test_finish_reason(stop_reason: Any, tools: bool, finish_reason: str) -> None:
    events: list[StreamEvent] = [MessageStart("m", "x"), *text_block(0, "hi")]
    if tools:
        events += tool_block(1, "t", "f", "{}")
    events.append(MessageDelta(stop_reason, Usage()))
    chunks = frames(encode_all(events))
    assert chunks[-3]["choices"][0]["finish_reason"] == finish_reason
    assert sdk_accumulate(encode_all(events)).choices[0].finish_reason == finish_reason


def test_done_without_a_message_delta_still_finishes_legally() -> None:
    enc = encoder(include_usage=False)
    out = enc.encode([MessageStart("m", "x"), BlockStart(0, ToolCall("t", "f"))]) + enc.done()
    final = sdk_accumulate(out)
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.tool_calls is not None
    assert final.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_in_stream_error_is_raised_by_the_sdk_and_ends_the_stream() -> None:
    enc = encoder()
    out = enc.encode([MessageStart("m", "x"), *text_block(0, "partial")]) + enc.error(
        "server_error", "upstream failed"
    )
    assert frames(out)[-1] == {
        "error": {"message": "upstream failed", "type": "server_error", "param": None, "code": None}
    }
    assert b"[DONE]" not in out
    with pytest.raises(openai.APIError) as caught:
        sdk_chunks(out)
    assert caught.value.message == "upstream failed"


# ---------------------------------------------------------------- property: any split, read back by the SDK

pieces = st.lists(st.text(max_size=8), max_size=5)
arguments = st.dictionaries(
    st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[StreamEvent], list[Any]]:
    """Random blocks as neutral events, with what a client must reassemble from them."""
    events: list[StreamEvent] = [MessageStart("msg_x", "m", START_USAGE)]
    expected: list[Any] = []
    for index in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "tool", "thinking"]))
        if kind == "text":
            parts = draw(pieces)
            events += text_block(index, *parts)
            expected.append(("text", "".join(parts)))
        elif kind == "tool":
            text = json.dumps(draw(arguments)) if draw(st.booleans()) else ""
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)))
            parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            events += tool_block(index, f"call_{index}", f"tool_{index}", *parts)
            expected.append(("tool", f"call_{index}", f"tool_{index}", text or "{}"))
        else:
            events += [
                BlockStart(index, Thinking()),
                ThinkingDelta(index, draw(st.text(max_size=5))),
                BlockStop(index),
            ]
    stop = draw(st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal", None]))
    events.append(MessageDelta(stop, FINAL_USAGE))
    return events, expected


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(1, 5), st.booleans())
def test_property_the_sdk_reassembles_any_split(
    stream: tuple[list[StreamEvent], list[Any]], batch: int, include_usage: bool
) -> None:
    events, expected = stream
    sse = encode_all(events, include_usage=include_usage, batch=batch)
    final = sdk_accumulate(sse)
    message = final.choices[0].message
    assert (message.content or "") == "".join(item[1] for item in expected if item[0] == "text")
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()]
    assert calls == [item[1:] for item in expected if item[0] == "tool"]
    assert (final.usage is not None) == include_usage
    for item in frames(sse)[:-1]:
        for fragment in item["choices"][0]["delta"].get("tool_calls", ()) if item["choices"] else ():
            assert "id" in fragment or fragment["function"]["arguments"] != ""


# ---------------------------------------------------------------- decoder


def chunk(delta: dict[str, Any] | None = None, finish_reason: Any = None, **fields: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": choices,
        **fields,
    }


UPSTREAM_USAGE = {
    "prompt_tokens": 30,
    "completion_tokens": 5,
    "total_tokens": 35,
    "prompt_tokens_details": {"cached_tokens": 10},
}


def decode_all(chunks: Sequence[dict[str, Any]]) -> tuple[list[StreamEvent], StreamDecoder]:
    decoder = StreamDecoder()
    events = [event for item in chunks for event in decoder.feed(item)]
    return events + decoder.finish(), decoder


def test_decoder_golden() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    events, decoder = decode_all(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hi"}),
            chunk({"content": " there"}),
            chunk({"tool_calls": [call]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
            chunk(
                {
                    "tool_calls": [
                        {**call, "index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}}
                    ]
                }
            ),
            chunk({}, "tool_calls"),
            chunk(None, usage=UPSTREAM_USAGE),
        ]
    )
    from tests.openai_codec_support import neutral

    golden("stream_decoded.events", neutral(events))
    assert decoder.stop_reason == "tool_use"
    assert decoder.usage == Usage(input_tokens=20, output_tokens=5, cache_read_tokens=10)
    assert events[-1] == MessageDelta(
        "tool_use", Usage(input_tokens=20, output_tokens=5, cache_read_tokens=10)
    )


def test_decoder_holds_the_message_delta_until_the_usage_chunk() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(chunk({"content": "x"})) == [
        MessageStart("chatcmpl-up", "gpt-4o"),
        BlockStart(0, Text("")),
        TextDelta(0, "x"),
    ]
    assert decoder.feed(chunk({}, "length")) == [BlockStop(0)]
    assert decoder.stop_reason == "max_tokens"
    assert decoder.feed(chunk(None, usage=UPSTREAM_USAGE)) == [
        MessageDelta("max_tokens", decoder.usage or Usage())
    ]
    assert decoder.finish() == []


def test_decoder_without_usage_chunk_sends_the_delta_at_finish() -> None:
    events, decoder = decode_all([chunk({"content": "x"}, "stop")])
    assert events[-1] == MessageDelta("end_turn", Usage())
    assert decoder.usage is None


def test_decoder_on_a_stream_cut_short() -> None:
    events, decoder = decode_all([chunk({"content": "x"})])
    assert decoder.stop_reason is None
    assert not any(isinstance(e, MessageDelta) for e in events)
    assert events[-1] == BlockStop(0)


def test_decoder_refusal_and_other_choices() -> None:
    other = {"index": 1, "delta": {"content": "ignored"}, "finish_reason": None}
    first = chunk({"refusal": "No."})
    first["choices"].append(other)
    events, decoder = decode_all([first, chunk({}, "stop")])
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta(0, "No.")]
    assert decoder.stop_reason == "refusal"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "boom", "type": "server_error"}, UpstreamUnavailable),
        ({"message": "slow down", "type": "tokens", "code": "rate_limit_exceeded"}, UpstreamRateLimited),
        ({"message": "?", "type": "Weird Type!"}, UpstreamUnavailable),
        ("a string", UpstreamUnavailable),
    ],
)
def test_decoder_raises_in_stream_errors_without_their_message(
    error: Any, expected: type[UpstreamError]
) -> None:
    decoder = StreamDecoder(provider="openai")
    decoder.feed(chunk({"content": "x"}))
    with pytest.raises(expected) as caught:
        decoder.feed({"error": error})
    assert caught.value.provider == "openai"
    assert "boom" not in caught.value.message and "slow down" not in caught.value.message


@pytest.mark.parametrize(
    "bad",
    [
        [chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})],
        [
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}),
            chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        ],
    ],
)
def test_decoder_wrong_shapes_raise(bad: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError):
        decode_all(bad)


def test_decoder_an_infinite_tool_call_index_is_a_wrong_shape() -> None:
    with pytest.raises(WRONG_SHAPE):
        decode_all([chunk({"tool_calls": [{"index": float("inf"), "id": "a", "function": {"name": "f"}}]})])


def check_neutral_stream(events: Sequence[StreamEvent]) -> None:
    """MessageStart; blocks 0..n in order, one open at a time; one MessageDelta last."""
    assert isinstance(events[0], MessageStart)
    assert isinstance(events[-1], MessageDelta)
    assert sum(isinstance(e, MessageDelta | MessageStart) for e in events) == 2
    open_index: int | None = None
    next_index = 0
    for event in events[1:-1]:
        if isinstance(event, BlockStart):
            assert open_index is None and event.index == next_index
            open_index, next_index = event.index, next_index + 1
        elif isinstance(event, BlockStop):
            assert event.index == open_index
            open_index = None
        else:
            assert getattr(event, "index", None) == open_index
    assert open_index is None


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(1, 5), st.booleans())
def test_property_encoder_then_decoder_round_trip(
    stream: tuple[list[StreamEvent], list[Any]], batch: int, include_usage: bool
) -> None:
    events, expected = stream
    sse = encode_all(events, include_usage=include_usage, batch=batch)
    decoder = StreamDecoder()
    decoded = [e for item in frames(sse)[:-1] for e in decoder.feed(item)] + decoder.finish()
    check_neutral_stream(decoded)
    blocks: list[Any] = []
    for event in decoded:
        if isinstance(event, BlockStart):
            block = event.block
            blocks.append(
                ["text", ""]
                if isinstance(block, Text)
                else ["tool", getattr(block, "id", ""), getattr(block, "name", ""), ""]
            )
        elif isinstance(event, TextDelta):
            blocks[-1][1] += event.text
        elif isinstance(event, ToolArgumentsDelta):
            blocks[-1][3] += event.partial_json
    # Text blocks next to each other on the wire are one text; an empty one is not a block at all.
    want: list[Any] = []
    for item in expected:
        if item[0] == "text":
            if not item[1]:
                continue
            if want and want[-1][0] == "text":
                want[-1][1] += item[1]
                continue
        want.append(list(item))
    assert blocks == want
    delta = decoded[-1]
    assert isinstance(delta, MessageDelta)
    assert delta.usage == (FINAL_USAGE if include_usage else Usage())
    stop = events[-1]
    assert isinstance(stop, MessageDelta)
    has_tools = any(item[0] == "tool" for item in expected)
    if stop.stop_reason == "max_tokens":
        assert delta.stop_reason == "max_tokens"
    elif has_tools:
        assert delta.stop_reason == "tool_use"
    else:
        assert delta.stop_reason == {"refusal": "refusal"}.get(stop.stop_reason or "", "end_turn")


def test_frames_are_compact_json() -> None:
    for line in encode_all(MIXED).split(b"\n\n"):
        if line and line != b"data: [DONE]":
            assert orjson.loads(line[len(b"data: ") :])
