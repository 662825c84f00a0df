"""The OpenAI Chat Completions codec, request side: validation, decode, encode (pure, no network)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import orjson
import pytest
import referencing

from llm_api.chat_model import (
    Chat,
    Image,
    Message,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from llm_api.codecs.openai_chat import (
    decode_request,
    encode_request,
    is_default,
    reasoning_effort,
    request_json_schema,
    validate_request,
)
from llm_api.errors import InvalidRequest, UnsupportedParameter
from tests.openai_codec_support import golden, load, neutral

CANARY = "canary-openai-codec-5e1b do not echo"
USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [USER], **fields}


def validate(value: Any) -> dict[str, Any]:
    return validate_request(orjson.dumps(value))


def decode(**fields: Any) -> Chat:
    return decode_request(validate(body(**fields)))


def invalid(value: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        validate(value)
    return caught.value


def unsupported(value: Any) -> UnsupportedParameter:
    with pytest.raises(UnsupportedParameter) as caught:
        decode_request(validate(value))
    assert caught.value.status_code == 400
    return caught.value


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("case", "fields", "loc"),
    [
        ("stream 0", {"stream": 0}, ["stream"]),
        ("stream string", {"stream": "true"}, ["stream"]),
        ("max_tokens string", {"max_tokens": "5"}, ["max_tokens"]),
        ("max_tokens float", {"max_tokens": 5.0}, ["max_tokens"]),
        ("max_tokens bool", {"max_tokens": True}, ["max_tokens"]),
        ("max_tokens zero", {"max_tokens": 0}, ["max_tokens"]),
        ("max_completion_tokens string", {"max_completion_tokens": "5"}, ["max_completion_tokens"]),
        ("n string", {"n": "1"}, ["n"]),
        ("temperature string", {"temperature": "0.5"}, ["temperature"]),
        ("temperature too high", {"temperature": 2.5}, ["temperature"]),
        ("top_p above one", {"top_p": 1.5}, ["top_p"]),
        ("stop number", {"stop": 5}, ["stop"]),
        (
            "include_usage string",
            {"stream_options": {"include_usage": "yes"}},
            ["stream_options", "include_usage"],
        ),
        ("tool_choice word", {"tool_choice": "always"}, ["tool_choice"]),
        ("parallel_tool_calls int", {"parallel_tool_calls": 1}, ["parallel_tool_calls"]),
        ("messages empty", {"messages": []}, ["messages"]),
        ("model empty", {"model": ""}, ["model"]),
        ("message not an object", {"messages": ["hello"]}, ["messages", 0]),
        ("message without role", {"messages": [{"content": "x"}]}, ["messages", 0]),
        ("content number", {"messages": [{"role": "user", "content": 42}]}, ["messages", 0, "content"]),
        ("part without type", {"messages": [{"role": "user", "content": [{"text": "x"}]}]}, None),
        (
            "tool without id",
            {"messages": [{"role": "tool", "content": "x"}]},
            ["messages", 0, "tool_call_id"],
        ),
        ("function name", {"tools": [{"type": "function", "function": {"name": "a b"}}]}, None),
        (
            "refusal part without refusal",
            {"messages": [USER, {"role": "assistant", "content": [{"type": "refusal"}]}]},
            ["messages", 1, "content", 0, "refusal"],
        ),
    ],
)
def test_invalid_bodies_name_the_field(case: str, fields: dict[str, Any], loc: list[Any] | None) -> None:
    error = invalid(body(**fields))
    assert error.status_code == 422
    locs = [detail["loc"] for detail in error.details]
    if loc is not None:
        assert loc in locs, (case, error.details)
    assert all(detail["type"] and detail["msg"] for detail in error.details)


def test_model_and_messages_are_required() -> None:
    assert ["model"] in [d["loc"] for d in invalid({"messages": [USER]}).details]
    assert ["messages"] in [d["loc"] for d in invalid({"model": "m"}).details]


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"])
def test_not_a_json_object_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_request(raw)
    assert caught.value.details[0]["loc"] == ["body"]


@pytest.mark.parametrize(
    "value",
    [
        body(messages=[{"role": CANARY, "content": CANARY}]),
        body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}, CANARY]}]),
        body(metadata={CANARY: 5}),
        body(logit_bias={CANARY: CANARY}),
        body(tools=[{"type": "function", "function": {"name": CANARY}}]),
        body(tool_choice=CANARY),
        body(response_format={"type": "json_schema", "json_schema": {"name": CANARY}}),
        body(stop=[CANARY, 5]),
        body(stream=CANARY),
        body(messages=[{"role": "assistant", "tool_calls": [{"id": CANARY, "type": "function"}]}]),
    ],
)
def test_errors_never_echo_the_input(value: dict[str, Any]) -> None:
    error = invalid(value)
    shown = error.message + json.dumps(error.details)
    assert CANARY not in shown
    assert "canary" not in shown


def test_error_message_names_the_deepest_field() -> None:
    error = invalid(body(messages=[USER, {"role": "user", "content": [{"type": "text", "text": 5}]}]))
    assert error.message.startswith("messages[1].content[0].text: ")


def test_unknown_fields_and_kinds_are_allowed_everywhere() -> None:
    value = body(
        messages=[
            {"role": "system", "content": "s", "x_extra": 1},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "t", "prompt_cache_breakpoint": {"mode": "explicit"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "file-1"}},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "original"}},
                ],
            },
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "x"}}]},
            {"role": "function", "name": "f", "content": "r"},
        ],
        tools=[{"type": "custom", "custom": {"name": "grammar"}}],
        tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        response_format={"type": "grammar", "grammar": "x"},
        logit_bias={"1": 5},
        seed=1,
        service_tier="flex",
        prediction={"type": "content", "content": "x"},
        brand_new_parameter={"anything": [1, 2]},
        reasoning_effort="ultra",
    )
    assert validate(value) == value


def test_validate_returns_the_body_as_sent() -> None:
    value = load("tools.request")
    assert validate(value) == value
    assert validate(body(temperature=1))["temperature"] == 1  # an int for a float is fine, kept as sent


def _schema_validator() -> jsonschema.Draft202012Validator:
    schema, defs = request_json_schema()
    document = {"components": {"schemas": {**defs, "ChatCompletionRequest": schema}}}
    resource = referencing.Resource.from_contents(
        document, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("urn:doc", resource)
    root = {"$ref": "urn:doc#/components/schemas/ChatCompletionRequest"}
    return jsonschema.Draft202012Validator(root, registry=registry)


def test_json_schema_refs_resolve_under_components() -> None:
    schema, defs = request_json_schema()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for k, v in node.items():
                if k == "mapping":
                    refs.extend(v.values())
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk([schema, defs])
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/OpenAI"), ref
        assert ref.removeprefix("#/components/schemas/") in defs, ref
    assert "$defs" not in json.dumps(schema)


@pytest.mark.parametrize("name", ["basic.request", "tools.request", "images.request"])
def test_json_schema_accepts_what_validation_accepts(name: str) -> None:
    _schema_validator().validate(load(name))


def test_json_schema_refuses_what_validation_refuses() -> None:
    validator = _schema_validator()
    for fields in ({"stream": 0}, {"max_tokens": "5"}, {"messages": []}, {"n": 0}):
        assert not validator.is_valid(body(**fields)), fields
        invalid(body(**fields))


# ---------------------------------------------------------------- golden: OpenAI → neutral → OpenAI


@pytest.mark.parametrize("name", ["basic", "tools", "images"])
def test_golden_request_round_trip(name: str) -> None:
    chat = decode_request(validate(load(f"{name}.request")))
    golden(f"{name}.neutral", neutral(chat))
    encoded = encode_request(chat, max_tokens_param="max_completion_tokens")
    golden(f"{name}.encoded", {"body": encoded.body, "dropped": list(encoded.dropped)})
    validate(encoded.body)


# ---------------------------------------------------------------- decode


def test_leading_system_and_developer_become_chat_system_later_ones_stay_in_place() -> None:
    chat = decode(
        messages=[
            {"role": "system", "content": "a"},
            {"role": "developer", "content": [{"type": "text", "text": "b"}]},
            USER,
            {"role": "developer", "content": "c"},
        ]
    )
    assert chat.system == (Text("a"), Text("b"))
    assert chat.messages[1] == Message("system", (Text("c"),))


def test_images_data_and_http_urls() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR"}},
        {"type": "image_url", "image_url": {"url": "http://example.com/a.gif"}},
    ]
    chat = decode(messages=[{"role": "user", "content": parts}])
    assert chat.messages[0].content == (
        Image(media_type="image/webp", data="UklGR"),
        Image(url="http://example.com/a.gif"),
    )


@pytest.mark.parametrize(
    "url",
    [
        "data:image/svg+xml;base64,PHN2Zz4=",
        "data:image/png,rawbytes",
        "data:text/plain;base64,aGk=",
        "data:;base64,aGk=",
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "example.com/a.png",
        f"data:{CANARY};base64,xx",
    ],
)
def test_untranslatable_images_are_400_naming_the_field(url: str) -> None:
    parts = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": url}}]
    error = unsupported(body(messages=[USER, USER, USER, {"role": "user", "content": parts}]))
    assert error.param == "messages[3].content[1].image_url"
    assert error.message.startswith("messages[3].content[1].image_url: ")
    assert CANARY not in error.message and url not in error.message


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"', "null", CANARY])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    error = unsupported(body(messages=[USER, {"role": "assistant", "tool_calls": [call]}]))
    assert error.param == "messages[1].tool_calls[0].function.arguments"
    assert CANARY not in error.message


def test_tool_call_arguments_are_parsed_and_empty_means_none() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, {"b": null}]}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    chat = decode(messages=[USER, {"role": "assistant", "content": "", "tool_calls": calls}])
    assert chat.messages[1].content == (ToolCall("c1", "f", {"a": [1, {"b": None}]}), ToolCall("c2", "g", {}))


def test_consecutive_tool_messages_merge_with_the_next_user_message() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    chat = decode(
        messages=[
            USER,
            {"role": "assistant", "tool_calls": [call, {**call, "id": "c2"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "tool_calls": [{**call, "id": "c3"}]},
            {"role": "tool", "tool_call_id": "c3", "content": "three"},
            {"role": "assistant", "content": "done"},
        ]
    )
    roles = [m.role for m in chat.messages]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert chat.messages[2].content == (
        ToolResult("c1", (Text("one"),)),
        ToolResult("c2", (Text("two"),)),
        Text("thanks"),
    )
    assert chat.messages[4].content == (ToolResult("c3", (Text("three"),)),)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", ToolChoice("none")),
        ("auto", ToolChoice("auto")),
        ("required", ToolChoice("required")),
        ({"type": "function", "function": {"name": "f"}}, ToolChoice("tool", "f")),
    ],
)
def test_tool_choice(choice: Any, expected: ToolChoice) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    chat = decode(tools=tools, tool_choice=choice, parallel_tool_calls=False)
    assert chat.tool_choice == expected
    assert chat.parallel_tool_calls is False
    assert chat.tools == (Tool("f"),)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": [{"type": CANARY}]}]}, "messages[0].content[0]"),
        (
            {
                "messages": [
                    {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": [USER, {"role": "function", "name": "f", "content": "x"}]}, "messages[1].role"),
        (
            {"messages": [USER, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]},
            "messages[1].function_call",
        ),
        (
            {
                "messages": [
                    USER,
                    {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]},
                ]
            },
            "messages[1].tool_calls[0]",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0]"),
        ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
        ({"reasoning_effort": CANARY}, "reasoning_effort"),
    ],
)
def test_untranslatable_fields_are_400_naming_them(fields: dict[str, Any], param: str) -> None:
    error = unsupported(body(**fields))
    assert error.param == param
    assert CANARY not in error.message


def test_parameters() -> None:
    chat = decode(
        max_tokens=10,
        max_completion_tokens=20,
        stop="x",
        temperature=1,
        top_p=0.5,
        user="u",
        stream=True,
        stream_options={"include_usage": True},
        reasoning_effort="xhigh",
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
    )
    assert (chat.max_tokens, chat.stop, chat.temperature, chat.top_p, chat.user) == (
        20,
        ("x",),
        1.0,
        0.5,
        "u",
    )
    assert isinstance(chat.temperature, float)
    assert chat.stream and chat.include_usage
    assert chat.reasoning == Reasoning(effort="xhigh")
    assert chat.response_format == ResponseFormat("json_schema", schema={"type": "object"}, name="n")
    assert decode(max_tokens=10).max_tokens == 10
    assert decode(stop=["a", "b"]).stop == ("a", "b")
    assert decode(reasoning_effort="none").reasoning is None
    assert decode(stream=True).include_usage is False


def test_everything_else_goes_to_unmapped_even_harmless_values_but_not_nulls() -> None:
    chat = decode(
        n=1, presence_penalty=0, frequency_penalty=0, seed=3, logprobs=False, store=None, novel={"a": 1}
    )
    assert dict(chat.unmapped) == {
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "seed": 3,
        "logprobs": False,
        "novel": {"a": 1},
    }


# ---------------------------------------------------------------- encode


def chat(*messages: Message, **fields: Any) -> Chat:
    return Chat(model="gpt-4o", messages=messages or (Message("user", (Text("hi"),)),), **fields)


def test_golden_from_anthropic_shaped_chat() -> None:
    """What the Anthropic codec hands over: blocks with cache_control extras, thinking, results first."""
    cache = {"cache_control": {"type": "ephemeral"}}
    value = chat(
        Message("user", (Text("Look", extras=cache), Image(media_type="image/png", data="iVBOR"))),
        Message(
            "assistant",
            (
                Thinking("let me think", signature="sig"),
                Text("I will read it."),
                ToolCall("toolu_1", "read", {"path": "a.png"}, extras=cache),
                ToolCall("toolu_2", "ls"),
            ),
        ),
        Message(
            "user",
            (
                ToolResult(
                    "toolu_1", (Text("here"), Image(media_type="image/png", data="AAAA")), is_error=False
                ),
                ToolResult("toolu_2", (), is_error=True),
                Text("What do you see?"),
            ),
        ),
        Message("system", (Text("Be brief."),)),
        Message("user", (Text("Go on"),)),
        system=(Text("You are Claude Code.", extras=cache), Text("Second block.")),
        tools=(
            Tool(
                "read",
                "Read a file",
                {"type": "object", "properties": {"path": {"type": "string"}}},
                extras=cache,
            ),
        ),
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=False,
        max_tokens=32000,
        stop=("\n\nHuman:",),
        reasoning=Reasoning(budget_tokens=5000),
        user="user-1",
        stream=True,
        include_usage=False,
        unmapped={"top_k": 5, "context_management": {"edits": []}},
    )
    encoded = encode_request(value, max_tokens_param="max_tokens")
    golden("anthropic_shaped.encoded", {"body": encoded.body, "dropped": list(encoded.dropped)})
    validate(encoded.body)
    assert "cache_control" not in json.dumps(encoded.body)
    assert encoded.dropped == ("thinking", "top_k", "context_management")


def test_max_tokens_param_and_stream_usage() -> None:
    encoded = encode_request(chat(max_tokens=5, stream=True), max_tokens_param="max_completion_tokens")
    assert encoded.body["max_completion_tokens"] == 5 and "max_tokens" not in encoded.body
    assert encoded.body["stream"] is True
    assert encoded.body["stream_options"] == {"include_usage": True}
    plain = encode_request(chat(), max_tokens_param="max_tokens").body
    assert plain == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_tool_options_only_with_tools() -> None:
    bare = encode_request(
        chat(tool_choice=ToolChoice("none"), parallel_tool_calls=False), max_tokens_param="max_tokens"
    )
    assert "tool_choice" not in bare.body and "parallel_tool_calls" not in bare.body
    with_tools = encode_request(
        chat(tools=(Tool("f"),), tool_choice=ToolChoice("tool", "f"), parallel_tool_calls=False),
        max_tokens_param="max_tokens",
    ).body
    assert with_tools["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert with_tools["parallel_tool_calls"] is False
    assert with_tools["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    ]


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        (Reasoning(budget_tokens=1024), "low"),
        (Reasoning(budget_tokens=2048), "low"),
        (Reasoning(budget_tokens=2049), "medium"),
        (Reasoning(budget_tokens=8192), "medium"),
        (Reasoning(budget_tokens=8193), "high"),
        (Reasoning(effort="minimal", budget_tokens=50000), "minimal"),
        (Reasoning(effort="max"), "max"),
    ],
)
def test_reasoning_budget_maps_to_an_effort(reasoning: Reasoning, effort: str) -> None:
    assert reasoning_effort(reasoning) == effort
    assert (
        encode_request(chat(reasoning=reasoning), max_tokens_param="max_tokens").body["reasoning_effort"]
        == effort
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ResponseFormat("text"), {"type": "text"}),
        (ResponseFormat("json_object"), {"type": "json_object"}),
        (
            ResponseFormat("json_schema", schema={"type": "object"}),
            {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}},
        ),
        (
            ResponseFormat("json_schema", schema={}, name="x", strict=True),
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": True}},
        ),
        (ResponseFormat("json_schema"), {"type": "json_object"}),
    ],
)
def test_response_format(value: ResponseFormat, expected: dict[str, Any]) -> None:
    assert (
        encode_request(chat(response_format=value), max_tokens_param="max_tokens").body["response_format"]
        == expected
    )


def test_tool_results_come_before_the_turns_text_and_their_images_after_them() -> None:
    value = chat(
        Message("user", (Text("q"),)),
        Message("assistant", (ToolCall("t1", "f"),)),
        Message("user", (Text("see"), ToolResult("t1", (Image(url="https://x/a.png"), Text("ok"))))),
    )
    messages = encode_request(value, max_tokens_param="max_tokens").body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    assert messages[3] == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
            {"type": "text", "text": "see"},
        ],
    }


def test_is_default_tells_harmless_unmapped_values() -> None:
    assert is_default("n", 1) and is_default("presence_penalty", 0) and is_default("frequency_penalty", 0.0)
    assert is_default("logprobs", False)
    assert not is_default("n", 2) and not is_default("seed", 0) and not is_default("logprobs", True)
    assert not is_default("top_logprobs", False)


def test_assistant_with_only_thinking_still_has_content() -> None:
    value = chat(Message("user", (Text("q"),)), Message("assistant", (Thinking("t", signature="s"),)))
    encoded = encode_request(value, max_tokens_param="max_tokens")
    assert encoded.body["messages"][1] == {"role": "assistant", "content": ""}
    assert encoded.dropped == ("thinking",)
    validate(encoded.body)
