"""The OpenAI codec, answer side: chat.completion objects, errors, the same-vendor pass-through helpers."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from llm_api.chat_model import ChatResult, Text, Thinking, ToolCall, Usage
from llm_api.codecs import WRONG_SHAPE
from llm_api.codecs.openai_chat import (
    PassthroughStreamObserver,
    StreamDecoder,
    decode_response,
    encode_response,
    error_body,
    error_type_for_status,
    prepare_passthrough,
    usage_of,
)
from llm_api.errors import UpstreamError
from tests.openai_codec_support import golden, load, neutral

CREATED = 1764576000


def completion(message: dict[str, Any], finish_reason: Any = "stop", **fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
        ],
        **fields,
    }


def result(
    *content: Any, stop_reason: Any = "end_turn", usage: Usage | None = None, id: str = "msg_01"
) -> ChatResult:
    return ChatResult(
        id=id, model="claude-x", content=content, stop_reason=stop_reason, usage=usage or Usage()
    )


@pytest.mark.parametrize("name", ["completion_tools", "completion_refusal"])
def test_golden_response_round_trip(name: str) -> None:
    decoded = decode_response(load(f"{name}.response"))
    golden(f"{name}.neutral", neutral(decoded))
    encoded = encode_response(decoded, created=CREATED)
    golden(f"{name}.encoded", encoded)
    ChatCompletion.model_validate(encoded)


def test_usage_does_not_count_the_cached_tokens_twice() -> None:
    usage = {"prompt_tokens": 120, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 100}}
    assert usage_of({"usage": usage}) == Usage(input_tokens=20, output_tokens=30, cache_read_tokens=100)
    assert usage_of({"usage": usage}).prompt_tokens == 120
    assert usage_of({}) == Usage()
    assert usage_of({"usage": None}) == Usage()


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_finish_reason_to_stop_reason(finish_reason: Any, stop_reason: str) -> None:
    assert decode_response(completion({"content": "x"}, finish_reason)).stop_reason == stop_reason


def test_tool_calls_with_a_stop_finish_are_tool_use() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    decoded = decode_response(completion({"content": None, "tool_calls": [call]}, "stop"))
    assert decoded.stop_reason == "tool_use"
    assert decoded.content == (ToolCall("c", "f", {}),)


def test_unparsable_arguments_are_kept_raw_and_sent_back_as_they_came() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"city": "Ro'}}
    decoded = decode_response(completion({"content": None, "tool_calls": [call]}, "length"))
    assert decoded.content == (ToolCall("c", "f", {"_raw": '{"city": "Ro'}),)
    encoded = encode_response(decoded, created=CREATED)
    assert encoded["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"city": "Ro'
    assert encoded["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, KeyError),
        ({"choices": []}, ValueError),
        ({"choices": [[1]]}, TypeError),
        ({"choices": [{}]}, KeyError),
        ({"choices": [{"message": {"content": 5}}]}, TypeError),
        ({"choices": [{"message": {"tool_calls": [{"type": "custom", "id": "x"}]}}]}, ValueError),
        (
            {"choices": [{"message": {"tool_calls": [{"id": "x", "type": "function", "function": {}}]}}]},
            KeyError,
        ),
        # Found by the fuzz test below: an infinite count is an OverflowError, in WRONG_SHAPE (a 502).
        (
            {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": float("inf")}},
            OverflowError,
        ),
        (
            {"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": float("-inf")}},
            OverflowError,
        ),
    ],
)
def test_wrong_shapes_raise(body: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_response(body)


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "stop"),  # no tool call was sent: a client's tool loop must not look for one
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop_reason: Any, finish_reason: str) -> None:
    encoded = encode_response(result(Text("x"), stop_reason=stop_reason), created=CREATED)
    assert encoded["choices"][0]["finish_reason"] == finish_reason
    ChatCompletion.model_validate(encoded)


def test_encode_response_from_an_anthropic_result() -> None:
    usage = Usage(input_tokens=10, output_tokens=5, cache_read_tokens=100, cache_write_tokens=20)
    value = result(
        Thinking("hmm", signature="s"),
        Text("Let me "),
        Text("look."),
        ToolCall("toolu_1", "read", {"path": "/a"}),
        stop_reason="tool_use",
        usage=usage,
    )
    encoded = encode_response(value, created=CREATED)
    assert encoded["id"] == "chatcmpl-msg_01"
    assert encoded["object"] == "chat.completion" and encoded["created"] == CREATED
    message = encoded["choices"][0]["message"]
    assert message["content"] == "Let me look."
    assert message["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "read", "arguments": '{"path":"/a"}'}}
    ]
    assert encoded["choices"][0]["finish_reason"] == "tool_calls"
    assert encoded["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
    }
    parsed = ChatCompletion.model_validate(encoded)
    assert parsed.choices[0].message.tool_calls is not None


def test_content_is_null_only_when_there_are_only_tool_calls() -> None:
    only_calls = encode_response(result(ToolCall("t", "f"), stop_reason="tool_use"), created=CREATED)
    assert only_calls["choices"][0]["message"]["content"] is None
    empty = encode_response(result(), created=CREATED)
    assert empty["choices"][0]["message"]["content"] == ""
    assert encode_response(result(Text("x"), id="chatcmpl-keep"), created=CREATED)["id"] == "chatcmpl-keep"
    assert encode_response(result(Text("x"), id=""), created=CREATED)["id"].startswith("chatcmpl-")


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (400, "invalid_request_error", openai.BadRequestError),
        (401, "authentication_error", openai.AuthenticationError),
        (403, "permission_error", openai.PermissionDeniedError),
        (404, "not_found_error", openai.NotFoundError),
        (413, "invalid_request_error", openai.APIStatusError),
        (422, "invalid_request_error", openai.UnprocessableEntityError),
        (429, "rate_limit_error", openai.RateLimitError),
        (500, "server_error", openai.InternalServerError),
        (502, "server_error", openai.InternalServerError),
        (503, "server_error", openai.InternalServerError),
    ],
)
def test_error_bodies_become_the_sdks_exceptions(
    status: int, error_type: str, exception: type[Exception]
) -> None:
    assert error_type_for_status(status) == error_type
    payload = error_body("nope", type=error_type, param="messages[0]", code="x")
    assert payload == {"error": {"message": "nope", "type": error_type, "param": "messages[0]", "code": "x"}}
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    response = httpx2.Response(
        status, json=payload, request=httpx2.Request("POST", "http://127.0.0.1:9/v1/x")
    )
    error = client._make_status_error_from_response(response)
    assert isinstance(error, exception)
    assert error.message.endswith("nope") and error.type == error_type and error.param == "messages[0]"


# ---------------------------------------------------------------- same-vendor pass-through


def test_prepare_passthrough_asks_for_usage_and_leaves_the_clients_body_alone() -> None:
    client_body = {"model": "gpt-4o", "messages": [], "stream": True, "seed": 1, "logit_bias": {"1": 2}}
    prepared = prepare_passthrough(client_body)
    assert prepared.body == {**client_body, "stream_options": {"include_usage": True}}
    assert prepared.include_usage is False
    assert "stream_options" not in client_body
    asked = prepare_passthrough(
        {**client_body, "stream_options": {"include_usage": True, "include_obfuscation": False}}
    )
    assert asked.include_usage is True
    assert asked.body["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert "stream_options" not in prepare_passthrough({"model": "m", "messages": []}).body


def test_prepare_passthrough_drops_clamps_and_renames() -> None:
    client_body = {"model": "gpt-4o-mini", "messages": [], "temperature": 0.5, "max_tokens": 32000}
    prepared = prepare_passthrough(
        client_body,
        remove=("temperature", "top_p", "model"),
        max_tokens_limit=16384,
        rename_max_tokens="max_completion_tokens",
    )
    assert prepared.body == {"model": "gpt-4o-mini", "messages": [], "max_completion_tokens": 16384}
    assert prepared.dropped == ("temperature",)
    assert prepared.clamped == ("max_completion_tokens",)
    small = prepare_passthrough({"model": "m", "messages": [], "max_tokens": 100}, max_tokens_limit=16384)
    assert small.clamped == () and small.body["max_tokens"] == 100


def chunk(choices: list[Any], **fields: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": choices,
            **fields,
        }
    )


USAGE = {
    "prompt_tokens": 50,
    "completion_tokens": 7,
    "total_tokens": 57,
    "prompt_tokens_details": {"cached_tokens": 40},
}
STREAM = [
    chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], usage=None),
    chunk([{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}], usage=None),
    chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=None),
    chunk([], usage=USAGE),
    b"[DONE]",
]


@pytest.mark.parametrize("include_usage", [True, False])
def test_observer_learns_usage_and_holds_back_only_the_unasked_usage_chunk(include_usage: bool) -> None:
    observer = PassthroughStreamObserver(include_usage=include_usage)
    forwarded = [observer.observe(data) for data in STREAM]
    assert forwarded == [True, True, True, include_usage, True]
    assert observer.usage == Usage(input_tokens=10, output_tokens=7, cache_read_tokens=40)
    assert observer.stop_reason == "end_turn"
    assert (observer.id, observer.model, observer.done, observer.error) == (
        "chatcmpl-9",
        "gpt-4o",
        True,
        None,
    )


def test_observer_sees_tool_calls_errors_and_forwards_what_it_cannot_read() -> None:
    observer = PassthroughStreamObserver(include_usage=False)
    call = {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert observer.observe(chunk([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]))
    assert observer.stop_reason is None
    assert observer.observe(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    assert observer.stop_reason == "tool_use"
    assert observer.observe(b"not json") and observer.observe(b"[1]")
    assert observer.observe(b'{"error": {"message": "boom", "type": "server_error"}}')
    assert observer.error == {"message": "boom", "type": "server_error"}
    assert not observer.done


KEYS = [
    "id", "model", "choices", "message", "delta", "content", "refusal", "tool_calls", "function", "name",
    "arguments", "index", "type", "finish_reason", "usage", "prompt_tokens", "completion_tokens",
    "prompt_tokens_details", "cached_tokens", "error",
]  # fmt: skip
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5))
def test_fuzz_decode_response_raises_only_wrong_shape_errors(body: dict[str, Any]) -> None:
    with contextlib.suppress(WRONG_SHAPE):
        decode_response(body)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5), max_size=4))
def test_fuzz_stream_decoder_raises_only_wrong_shape_or_upstream_errors(chunks: list[dict[str, Any]]) -> None:
    decoder = StreamDecoder()
    with contextlib.suppress(*WRONG_SHAPE, UpstreamError):
        for item in chunks:
            decoder.feed(item)
        decoder.finish()
    observer = PassthroughStreamObserver(include_usage=False)
    for item in chunks:
        observer.observe(orjson.dumps(item))
