"""Anthropic Messages streams: the decoder (upstream events → neutral), the encoder (neutral → the bytes a
client reads, checked by the anthropic SDK's own `messages.stream()`), and the pass-through observer."""

from __future__ import annotations

import json
from typing import Any

import httpx2
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
from llm_api.codecs import anthropic_messages as codec
from llm_api.errors import UpstreamError, UpstreamUnavailable
from tests.anthropic_codec_support import check_golden, sdk_stream, sse_frames


def upstream_stream(*, forced_json: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """An upstream stream as Anthropic sends it: thinking, text, a server tool block, a tool call."""
    tool_name = codec.FORCED_JSON_TOOL if forced_json else "get_weather"
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 100},
    }

    def delta(index: int, **fields: Any) -> tuple[str, dict[str, Any]]:
        return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields})

    def start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )

    def stop(index: int) -> tuple[str, dict[str, Any]]:
        return ("content_block_stop", {"type": "content_block_stop", "index": index})

    return [
        ("message_start", {"type": "message_start", "message": message}),
        ("ping", {"type": "ping"}),
        start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, type="thinking_delta", thinking="Let me think."),
        delta(0, type="signature_delta", signature="sig-xyz"),
        stop(0),
        start(1, {"type": "text", "text": ""}),
        delta(1, type="text_delta", text="Hello"),
        delta(1, type="text_delta", text=""),
        delta(1, type="text_delta", text=" world"),
        stop(1),
        start(2, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        delta(2, type="input_json_delta", partial_json='{"query": "x"}'),
        stop(2),
        start(3, {"type": "tool_use", "id": "toolu_1", "name": tool_name, "input": {}}),
        delta(3, type="input_json_delta", partial_json=""),
        delta(3, type="input_json_delta", partial_json='{"city": '),
        delta(3, type="input_json_delta", partial_json='"Paris"}'),
        stop(3),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 42, "cache_creation_input_tokens": None},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def decode(events: list[tuple[str, dict[str, Any]]], **options: Any) -> tuple[list[StreamEvent], bool]:
    decoder = codec.StreamDecoder(**options)
    out = [item for name, event in events for item in decoder.feed(name, event)]
    return out, decoder.done


# ---------------------------------------------------------------- decoder


def test_decode_an_upstream_stream() -> None:
    events, done = decode(upstream_stream())
    assert done
    check_golden("stream_decoded.json", events)
    assert events[0] == MessageStart("msg_01", "claude-sonnet-4-5", Usage(25, 1, 100, 0))
    # The server tool block is skipped and the tool call renumbered 2.
    assert BlockStart(2, ToolCall("toolu_1", "get_weather")) in events
    assert [e.partial_json for e in events if isinstance(e, ToolArgumentsDelta)] == ['{"city": ', '"Paris"}']
    assert events[-1] == MessageDelta("tool_use", Usage(25, 42, 100, 0))
    assert TextDelta(1, "") not in events


def test_decode_unwraps_the_forced_json_tool_into_text() -> None:
    events, _ = decode(upstream_stream(forced_json=True), unwrap_forced_json=True)
    assert BlockStart(2, Text("")) in events
    assert [e.text for e in events if isinstance(e, TextDelta) and e.index == 2] == ['{"city": ', '"Paris"}']
    assert events[-1] == MessageDelta("end_turn", Usage(25, 42, 100, 0))


def test_message_delta_input_tokens_win_over_message_start() -> None:
    events, _ = decode(
        [
            (
                "message_start",
                {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}}},
            ),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 9, "input_tokens": 30},
                },
            ),
        ]
    )
    assert events[-1] == MessageDelta("end_turn", Usage(30, 9))


def test_an_in_stream_error_raises_the_upstream_error() -> None:
    decoder = codec.StreamDecoder()
    with pytest.raises(UpstreamUnavailable):
        decoder.feed(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )


def test_an_event_of_the_wrong_shape_is_an_upstream_error() -> None:
    decoder = codec.StreamDecoder()
    with pytest.raises(UpstreamError):
        decoder.feed("message_start", {"type": "message_start"})


def test_an_infinite_block_index_is_an_upstream_error() -> None:
    decoder = codec.StreamDecoder()
    block = {
        "type": "content_block_start",
        "index": float("inf"),
        "content_block": {"type": "text", "text": ""},
    }
    with pytest.raises(UpstreamError):
        decoder.feed("content_block_start", block)


# ---------------------------------------------------------------- encoder: path-3 rules


def neutral_stream() -> list[StreamEvent]:
    """What a translated OpenAI stream looks like neutrally: an empty text block first, text, two tools
    (the second without arguments), and the usage only at the end."""
    return [
        MessageStart("chatcmpl-1", "gpt-4o-mini", Usage()),
        BlockStart(0, Text("")),
        BlockStop(0),
        BlockStart(1, Text("")),
        TextDelta(1, ""),
        TextDelta(1, "Hi"),
        TextDelta(1, " there"),
        BlockStop(1),
        BlockStart(2, ToolCall("call_1", "Read")),
        ToolArgumentsDelta(2, ""),
        ToolArgumentsDelta(2, '{"file_path"'),
        ToolArgumentsDelta(2, ': "a.txt"}'),
        BlockStop(2),
        BlockStart(3, ToolCall("call_2", "Ls")),
        BlockStop(3),
        MessageDelta("tool_use", Usage(input_tokens=11, output_tokens=7, cache_read_tokens=4)),
    ]


def check_path3_rules(frames: list[tuple[str, dict[str, Any]]]) -> None:
    """The stream rules of issue 9's path 3, as a client sees them."""
    names = [name for name, _ in frames]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_delta") == 1 and names.count("message_stop") == 1
    assert all(name == data["type"] for name, data in frames)
    message = frames[0][1]["message"]
    assert message["content"] == [] and message["stop_reason"] is None and message["id"].startswith("msg_")
    opened: list[int] = []
    open_index: int | None = None
    text_seen: dict[int, str] = {}
    for name, data in frames[1:-2]:
        if name == "content_block_start":
            assert open_index is None, "one block open at a time"
            assert data["index"] == len(opened), "blocks numbered 0..n in order"
            open_index = data["index"]
            opened.append(open_index)
            if data["content_block"]["type"] == "text":
                text_seen[open_index] = data["content_block"]["text"]
            if data["content_block"]["type"] == "tool_use":
                assert data["content_block"]["input"] == {}
        elif name == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            if delta["type"] == "text_delta":
                assert delta["text"]
                text_seen[open_index] += delta["text"]
            if delta["type"] == "input_json_delta":
                assert delta["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        else:
            assert name == "ping", name
    assert open_index is None
    assert all(text_seen.values()), "never an empty text block"


def test_encode_follows_the_path3_rules_and_the_sdk_reads_it() -> None:
    encoder = codec.StreamEncoder(id="chatcmpl-1", model="gpt-4o-mini")
    data = encoder.encode(neutral_stream())
    assert encoder.finished
    frames = sse_frames(data)
    check_golden("stream_encoded.json", frames)
    check_path3_rules(frames)
    texts, final = sdk_stream([data])
    assert texts == ["Hi", " there"]
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[1].input == {"file_path": "a.txt"} and final.content[2].input == {}
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        11,
        7,
        4,
    )
    assert final.id == "msg_chatcmpl-1" and final.model == "gpt-4o-mini"


def test_message_start_carries_the_input_tokens_when_known() -> None:
    encoder = codec.StreamEncoder(id="msg_x", model="m")
    frames = sse_frames(encoder.encode([MessageStart("msg_x", "m", Usage(input_tokens=99))]))
    assert frames[0][1]["message"]["usage"]["input_tokens"] == 99


def test_thinking_blocks_stream_with_their_signature() -> None:
    events, _ = decode(upstream_stream())
    encoder = codec.StreamEncoder(id="msg_01", model="claude-sonnet-4-5")
    data = encoder.encode(events)
    check_path3_rules(sse_frames(data))
    _, final = sdk_stream([data])
    assert final.content[0].type == "thinking"
    assert (final.content[0].thinking, final.content[0].signature) == ("Let me think.", "sig-xyz")
    assert final.content[1].text == "Hello world"


def test_a_stream_that_fails_ends_with_an_error_event_the_sdk_raises() -> None:
    import anthropic

    encoder = codec.StreamEncoder(id="m1", model="gpt-4o")
    data = encoder.encode(neutral_stream()[:6]) + encoder.error(
        "overloaded_error", "the provider is unavailable"
    )
    frames = sse_frames(data)
    assert frames[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "the provider is unavailable"}},
    )
    assert encoder.finished and encoder.encode(neutral_stream()[6:]) == b""
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_stream([data])
    assert "overloaded_error" in str(caught.value)


def test_events_before_message_start_still_begin_with_message_start() -> None:
    encoder = codec.StreamEncoder(id="m1", model="gpt-4o")
    frames = sse_frames(
        encoder.encode(
            [BlockStart(0, Text("")), TextDelta(0, "x"), BlockStop(0), MessageDelta("end_turn", Usage())]
        )
    )
    check_path3_rules(frames)


# ---------------------------------------------------------------- encoder: property tests

_piece = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=["Cs"]), max_size=8)
_json_pieces = st.dictionaries(
    st.text(st.characters(categories=["L"]), min_size=1, max_size=5), st.integers() | _piece, max_size=3
)


@st.composite
def neutral_streams(draw: st.DrawFn) -> tuple[list[StreamEvent], list[dict[str, Any]]]:
    """A neutral stream and the content a client must end up with."""
    events: list[StreamEvent] = [MessageStart("id1", "gpt-x", Usage(input_tokens=draw(st.integers(0, 99))))]
    expected: list[dict[str, Any]] = []
    for index in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "tool", "thinking"]))
        if kind == "text":
            pieces = draw(st.lists(_piece, max_size=4))
            events += [BlockStart(index, Text("")), *(TextDelta(index, p) for p in pieces), BlockStop(index)]
            if "".join(pieces):
                expected.append({"type": "text", "text": "".join(pieces)})
        elif kind == "tool":
            arguments = draw(_json_pieces)
            text = json.dumps(arguments) if arguments else ""
            cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4)))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            call = ToolCall(f"call_{index}", "fn")
            events += [
                BlockStart(index, call),
                *(ToolArgumentsDelta(index, p) for p in pieces),
                BlockStop(index),
            ]
            expected.append({"type": "tool_use", "id": call.id, "name": "fn", "input": arguments})
        else:
            pieces = draw(st.lists(_piece, max_size=3))
            events += [BlockStart(index, Thinking()), *(ThinkingDelta(index, p) for p in pieces)]
            events += [ThinkingDelta(index, signature="sig"), BlockStop(index)]
            expected.append({"type": "thinking", "thinking": "".join(pieces), "signature": "sig"})
    events.append(MessageDelta(draw(st.sampled_from(["end_turn", "tool_use", "max_tokens"])), Usage(1, 2)))
    return events, expected


def _content(final: Any) -> list[dict[str, Any]]:
    blocks = []
    for block in final.content:
        data = block.model_dump(exclude_none=True)
        data.pop("parsed_output", None)
        blocks.append(data)
    return blocks


@settings(max_examples=80, deadline=None)
@given(neutral_streams(), st.data())
def test_any_stream_split_anywhere_is_read_back_by_the_sdk(
    stream: tuple[list[StreamEvent], list[dict[str, Any]]], data: st.DataObject
) -> None:
    events, expected = stream
    encoder = codec.StreamEncoder(id="id1", model="gpt-x")
    # Events arrive in batches of any size, and the bytes reach the client cut anywhere.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    body = b"".join(
        encoder.encode(events[a:b]) for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)
    )
    check_path3_rules(sse_frames(body))
    splits = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0, *splits], [*splits, len(body)], strict=True)]
    texts, final = sdk_stream(chunks)
    assert _content(final) == expected
    assert "".join(texts) == "".join(block["text"] for block in expected if block["type"] == "text")
    assert final.usage.output_tokens == 2


@settings(max_examples=80, deadline=None)
@given(neutral_streams())
def test_encoded_then_decoded_gives_the_same_content(
    stream: tuple[list[StreamEvent], list[dict[str, Any]]],
) -> None:
    events, expected = stream
    body = codec.StreamEncoder(id="id1", model="gpt-x").encode(events)
    decoded, done = decode(sse_frames(body))
    assert done
    blocks: dict[int, dict[str, Any]] = {}
    for event in decoded:
        if isinstance(event, BlockStart):
            block = event.block
            if isinstance(block, ToolCall):
                blocks[event.index] = {"type": "tool_use", "id": block.id, "name": block.name, "json": ""}
            elif isinstance(block, Text):
                blocks[event.index] = {"type": "text", "text": ""}
            else:
                blocks[event.index] = {"type": "thinking", "thinking": "", "signature": ""}
        elif isinstance(event, TextDelta):
            blocks[event.index]["text"] += event.text
        elif isinstance(event, ToolArgumentsDelta):
            blocks[event.index]["json"] += event.partial_json
        elif isinstance(event, ThinkingDelta):
            blocks[event.index]["thinking"] += event.text
            blocks[event.index]["signature"] += event.signature or ""
    content = [
        {**{k: v for k, v in block.items() if k != "json"}, "input": json.loads(block["json"] or "{}")}
        if block["type"] == "tool_use"
        else block
        for _, block in sorted(blocks.items())
    ]
    assert content == expected


# ---------------------------------------------------------------- pass-through observer


def test_the_observer_reads_what_the_gateway_needs() -> None:
    observer = codec.PassthroughStreamObserver()
    for name, event in upstream_stream():
        observer.observe(name, orjson.dumps(event))
    assert observer.done and observer.error is None
    assert (observer.id, observer.model) == ("msg_01", "claude-sonnet-4-5")
    assert observer.usage == Usage(input_tokens=25, output_tokens=42, cache_read_tokens=100)
    assert observer.stop_reason == "tool_use"


def test_the_observer_sees_an_in_stream_error_and_ignores_garbage() -> None:
    observer = codec.PassthroughStreamObserver()
    observer.observe("message_start", b"not json")
    observer.observe("content_block_delta", b"{also not parsed")
    observer.observe(
        "error", b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
    )
    assert observer.error == {"type": "overloaded_error", "message": "Overloaded"} and not observer.done
    unreadable = codec.PassthroughStreamObserver()
    unreadable.observe("error", b"<html>oops</html>")
    assert unreadable.error == {"type": "api_error"}


def test_tool_arguments_given_at_the_start_are_kept_both_ways() -> None:
    start = {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}}}
    block = {"type": "tool_use", "id": "t1", "name": "fn", "input": {"a": 1}}
    events, _ = decode(
        [
            ("message_start", start),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]
    )
    assert events[2] == ToolArgumentsDelta(0, '{"a":1}')
    encoder = codec.StreamEncoder(id="m", model="c")
    body = encoder.encode(
        [
            MessageStart("m", "c"),
            BlockStart(0, ToolCall("t1", "fn", {"a": 1})),
            BlockStop(0),
            MessageDelta("tool_use", Usage()),
        ]
    )
    _, final = sdk_stream([body])
    assert final.content[0].input == {"a": 1}


def test_path3_an_openai_stream_reaches_an_anthropic_client() -> None:
    """The OpenAI codec's decoder, then this encoder, read by the anthropic SDK: the whole of path 3's
    response side. The usage chunk comes after the finish reason; message_delta waits for it."""
    from llm_api.codecs import openai_chat

    def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {
            "id": "chatcmpl-7",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini",
            "choices": choices,
            **extra,
        }

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Read", "arguments": ""}}
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Reading"}),
        chunk({"content": " it."}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"file_path": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"a.txt"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "Ls", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({}, "tool_calls"),
        chunk(
            usage={
                "prompt_tokens": 50,
                "completion_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 20},
            }
        ),
    ]
    decoder = openai_chat.StreamDecoder()
    encoder = codec.StreamEncoder(id=decoder.id or "chatcmpl-7", model="gpt-4o-mini")
    pieces = [encoder.encode(decoder.feed(item)) for item in chunks]
    pieces.append(encoder.encode(decoder.finish()))
    assert b"message_delta" in pieces[-2] and b"message_delta" not in b"".join(pieces[:-2])
    body = b"".join(pieces)
    check_path3_rules(sse_frames(body))
    texts, final = sdk_stream([body])
    assert texts == ["Reading", " it."]
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("text", None),
        ("tool_use", {"file_path": "a.txt"}),
        ("tool_use", {}),
    ]
    assert final.stop_reason == "tool_use"
    # Nothing counted twice: the cached part of prompt_tokens is cache_read_input_tokens.
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (
        30,
        20,
        12,
    )


def test_path2_an_anthropic_stream_reaches_an_openai_client() -> None:
    """This decoder, then the OpenAI codec's encoder, read by the openai SDK's `chat.completions.stream()`."""
    import openai

    from llm_api.codecs import openai_chat

    decoder = codec.StreamDecoder()
    encoder = openai_chat.StreamEncoder(id="msg_01", model="claude-sonnet-4-5", created=1, include_usage=True)
    body = (
        b"".join(encoder.encode(decoder.feed(name, event)) for name, event in upstream_stream())
        + encoder.done()
    )

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    client = openai.OpenAI(
        api_key="test",
        base_url="http://gateway.test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )
    with (
        client,
        client.chat.completions.stream(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        completion = stream.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Hello world"
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("get_weather", '{"city": "Paris"}')
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (125, 42)
    assert completion.usage.prompt_tokens_details.cached_tokens == 100
