"""The Anthropic Messages codec: validation, requests both ways, responses, errors, passthrough, counts.

Pure tests (no server): golden files under tests/golden/anthropic_messages/ (wire JSON in, neutral or
wire JSON out) and hypothesis round trips. Streams are in test_codec_anthropic_stream.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api.chat_model import (
    Chat,
    ChatResult,
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
    Usage,
)
from llm_api.codecs import anthropic_messages as codec
from llm_api.codecs import openai_chat
from llm_api.emulator.anthropic_validate import validate_messages_body
from llm_api.emulator.catalogue import default_models
from llm_api.emulator.openai_validate import validate_chat_body
from llm_api.errors import InvalidRequest, UnsupportedParameter
from tests.anthropic_codec_support import check_golden, load

CANARY = "canary-anthropic-codec-5d1e do not echo"
USER = {"role": "user", "content": "hello"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [USER], **fields}


def validate(data: Any) -> dict[str, Any]:
    return codec.validate_request(orjson.dumps(data))


# ---------------------------------------------------------------- validation


def test_a_claude_code_request_is_valid_and_returned_unchanged() -> None:
    data = load("claude_code_request.input.json")
    assert validate(data) == data


def test_unknown_fields_and_block_types_pass_validation() -> None:
    data = body(
        service_tier="auto",
        container={"id": "c1"},
        mcp_servers=[{"type": "url", "url": "https://mcp.example", "name": "x"}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
                    {"type": "text", "text": "hi", "citations": None, "future_field": 1},
                    {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                ],
            }
        ],
        tools=[{"type": "bash_20250124", "name": "bash"}],
    )
    assert validate(data) == data


INVALID: list[tuple[str, Any, str]] = [
    ("max_tokens missing", {"model": "m", "messages": [USER]}, "max_tokens"),
    ("max_tokens a string", body(max_tokens="5"), "max_tokens"),
    ("max_tokens negative", body(max_tokens=-1), "max_tokens"),
    ("stream 0", body(stream=0), "stream"),
    ("temperature a string", body(temperature="0.5"), "temperature"),
    ("temperature above 1", body(temperature=1.5), "temperature"),
    ("messages empty", body(messages=[]), "messages"),
    ("model missing", {"max_tokens": 5, "messages": [USER]}, "model"),
    ("role tool", body(messages=[{"role": "tool", "content": CANARY}]), "messages.0.role"),
    ("content empty", body(messages=[{"role": "user", "content": ""}]), "messages.0.content"),
    ("content a number", body(messages=[{"role": "user", "content": 42}]), "messages.0.content"),
    (
        "text block without text",
        body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages.0.content.0.text",
    ),
    (
        "image media type",
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                        }
                    ],
                }
            ]
        ),
        "messages.0.content.0.source.media_type",
    ),
    (
        "tool_use without id",
        body(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "x", "input": {}}]}]),
        "messages.0.content.0.id",
    ),
    (
        "system message with an image",
        body(
            messages=[
                {"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}
            ]
        ),
        "messages.0.content.0.type",
    ),
    ("custom tool without schema", body(tools=[{"name": "x"}]), "tools.0.input_schema"),
    (
        "tool name with a space",
        body(tools=[{"name": "read file", "input_schema": {"type": "object"}}]),
        "tools.0.name",
    ),
    (
        "tool schema not an object",
        body(tools=[{"name": "x", "input_schema": {"type": "array"}}]),
        "tools.0.input_schema.type",
    ),
    ("tool_choice unknown", body(tool_choice={"type": CANARY}), "tool_choice.type"),
    ("tool_choice a string", body(tool_choice="auto"), "tool_choice.type"),
    ("thinking without budget", body(thinking={"type": "enabled"}), "thinking.budget_tokens"),
    (
        "thinking budget too small",
        body(thinking={"type": "enabled", "budget_tokens": 10}),
        "thinking.budget_tokens",
    ),
    ("stop_sequences a string", body(stop_sequences=CANARY), "stop_sequences"),
    ("metadata user_id a number", body(metadata={"user_id": 5}), "metadata.user_id"),
]


@pytest.mark.parametrize(("case", "data", "loc"), INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_bodies_name_the_field_and_never_echo_the_value(case: str, data: Any, loc: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(data)
    error = caught.value
    locs = [detail["loc"] for detail in error.details]
    assert loc in locs, (case, error.details)
    assert error.message.startswith(f"{locs[0]}: ")
    assert CANARY not in error.message and CANARY not in json.dumps(error.details)


@pytest.mark.parametrize("raw", [b"", b"{", b"[1]", b'"text"', b"null"])
def test_a_body_that_is_not_a_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        codec.validate_request(raw)


def test_count_tokens_bodies_need_no_max_tokens() -> None:
    data = {"model": "claude-sonnet-4-5", "messages": [USER], "tools": [], "thinking": {"type": "adaptive"}}
    assert codec.validate_count_tokens(orjson.dumps(data)) == data
    with pytest.raises(InvalidRequest):
        codec.validate_count_tokens(orjson.dumps({"model": "m", "messages": []}))


def test_the_json_schema_refs_resolve_in_components() -> None:
    for model in (codec.MessagesRequest, codec.CountTokensRequest):
        schema, defs = codec.request_json_schema(model)
        document = json.dumps([schema, defs])
        refs = {part.split('"')[0] for part in document.split('"$ref": "#/components/schemas/')[1:]}
        assert refs and refs <= set(defs), refs - set(defs)
        assert "$defs" not in document and all(name.startswith("Anthropic") for name in defs)
    assert "max_tokens" in codec.request_json_schema()[0]["required"]


def _schema_validator() -> Any:
    import jsonschema

    schema, defs = codec.request_json_schema(ref_prefix="#/components/schemas/")
    document = {**schema, "components": {"schemas": defs}}
    jsonschema.Draft202012Validator.check_schema(document)  # OpenAPI 3.1 speaks JSON Schema 2020-12
    return jsonschema.Draft202012Validator(document)


def test_the_json_schema_says_what_validation_does() -> None:
    """A body the schema accepts is accepted, and the invalid bodies above break the schema too."""
    validator = _schema_validator()
    good = [
        load("claude_code_request.input.json"),
        body(),
        body(tools=[{"type": "bash_20250124", "name": "bash"}]),
    ]
    for data in good:
        assert not list(validator.iter_errors(data))
        validate(data)
    for _, data, _ in INVALID:
        assert list(validator.iter_errors(data)), data


# ---------------------------------------------------------------- decode_request


def test_decode_a_claude_code_request() -> None:
    chat = codec.decode_request(validate(load("claude_code_request.input.json")))
    check_golden("claude_code_request.chat.json", chat)
    assert chat.messages[3] == Message("system", (Text("The user is in plan mode."),))
    assert chat.system[1].extras == {"anthropic": {"cache_control": {"type": "ephemeral"}}}
    assert chat.reasoning == Reasoning(effort="high")
    assert chat.parallel_tool_calls is False and chat.tool_choice == ToolChoice("auto")
    assert chat.user == "user_abc_account_def_session_123"
    assert set(chat.unmapped) == {"top_k", "context_management", "tools.1"}


def test_decode_thinking_budget_and_structured_output() -> None:
    chat = codec.decode_request(
        body(
            thinking={"type": "enabled", "budget_tokens": 2048},
            output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}, "new": 1},
            metadata={"user_id": "u", "other": 2},
            tool_choice={"type": "any"},
            tools=[{"name": "t", "input_schema": {"type": "object"}}],
        )
    )
    assert chat.reasoning == Reasoning(budget_tokens=2048)
    assert chat.response_format == ResponseFormat("json_schema", schema={"type": "object"})
    assert chat.tool_choice == ToolChoice("required")
    assert chat.unmapped == {"output_config": {"new": 1}, "metadata": {"other": 2}}


@pytest.mark.parametrize(
    ("fields", "reasoning"),
    [
        ({}, None),
        ({"thinking": {"type": "enabled", "budget_tokens": 3000}}, Reasoning(budget_tokens=3000)),
        ({"thinking": {"type": "adaptive"}}, Reasoning(effort="medium")),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, Reasoning(effort="max")),
        ({"output_config": {"effort": "low"}}, Reasoning(effort="low")),
        ({"thinking": {"type": "disabled"}}, None),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}}, Reasoning(effort="high")),
        ({"output_config": {"effort": "turbo"}}, None),
    ],
)
def test_decode_thinking_and_effort(fields: dict[str, Any], reasoning: Reasoning | None) -> None:
    chat = codec.decode_request(validate(body(**fields)))
    assert chat.reasoning == reasoning
    assert ("output_config.effort" in chat.unmapped) is (
        fields.get("output_config", {}).get("effort") == "turbo"
    )


@pytest.mark.parametrize(
    ("model", "changes", "max_tokens_param"),
    [
        ("o4-mini", {}, "max_completion_tokens"),
        # What the service does for a model without reasoning and a lower output limit.
        ("gpt-4o-mini", {"reasoning": None, "max_tokens": 16384}, "max_tokens"),
    ],
)
def test_a_claude_code_request_translated_for_openai_passes_the_emulators_checks(
    model: str, changes: dict[str, Any], max_tokens_param: Any
) -> None:
    """Path 3, request side: this codec's decoder, then the OpenAI codec's encoder."""
    chat = codec.decode_request(validate(load("claude_code_request.input.json")))
    chat = dataclasses.replace(chat, model=model, **changes)
    encoded = openai_chat.encode_request(chat, max_tokens_param=max_tokens_param)
    assert validate_chat_body(json.loads(orjson.dumps(encoded.body)), default_models()) is None
    roles = [message["role"] for message in encoded.body["messages"]]
    assert roles.count("system") == 2 and roles.count("tool") == 2  # the mid-conversation one in place


@pytest.mark.parametrize(
    ("block", "where"),
    [
        (
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": CANARY}},
            "messages.0.content.0",
        ),
        ({"type": "image", "source": {"type": "file", "file_id": CANARY}}, "messages.0.content.0.source"),
        (
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "content": [{"type": "search_result", "text": CANARY}],
            },
            "messages.0.content.0.content.0",
        ),
        ({"type": "canary_block_type_5d1e"}, "messages.0.content.0"),
    ],
)
def test_content_another_vendor_cannot_take_is_a_400_naming_its_place(
    block: dict[str, Any], where: str
) -> None:
    with pytest.raises(UnsupportedParameter) as caught:
        codec.decode_request(validate(body(messages=[{"role": "user", "content": [block]}])))
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(where + ":") and caught.value.param == where
    assert CANARY not in caught.value.message and "canary" not in caught.value.message


# ---------------------------------------------------------------- encode_request


def encode(chat: Chat, **options: Any) -> codec.EncodedRequest:
    return codec.encode_request(
        chat,
        default_max_tokens=options.pop("default_max_tokens", 4096),
        structured_outputs=options.pop("so", True),
    )


def test_encode_an_openai_request_for_claude() -> None:
    chat = openai_chat.decode_request(load("openai_request.input.json"))
    encoded = encode(chat)
    check_golden(
        "openai_request.encoded.json",
        {"body": encoded.body, "dropped": encoded.dropped, "clamped": encoded.clamped},
    )
    # What Anthropic itself would check: our own validator accepts the body.
    validate(encoded.body)
    turns = encoded.body["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert [block["type"] for block in turns[2]["content"]] == ["tool_result", "tool_result", "text"]
    assert encoded.body["system"] == "You are terse.\n\nAnswer in English."
    assert encoded.body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert encoded.body["stop_sequences"] == ["END"] and "stop" in encoded.dropped
    assert {"seed", "n", "logprobs", "presence_penalty"} <= set(encoded.dropped)
    assert encoded.body["temperature"] == 1.0 and encoded.clamped == ("temperature",)


@pytest.mark.parametrize(
    "name", ["openai_request.input.json", "openai_json_schema.input.json", "openai_tool_loop.input.json"]
)
@pytest.mark.parametrize("structured_outputs", [True, False])
def test_translated_requests_pass_the_emulators_checks(name: str, structured_outputs: bool) -> None:
    """The emulator checks bodies as the real API does (tool turns, images, thinking rules...)."""
    chat = openai_chat.decode_request(load(name))
    encoded = encode(chat, so=structured_outputs)
    assert validate_messages_body(json.loads(orjson.dumps(encoded.body)), default_models()) is None


@pytest.mark.parametrize("structured_outputs", [True, False])
def test_encode_json_schema_output(structured_outputs: bool) -> None:
    chat = openai_chat.decode_request(load("openai_json_schema.input.json"))
    encoded = encode(chat, so=structured_outputs)
    check_golden(
        f"openai_json_schema.encoded.{'structured' if structured_outputs else 'tool'}.json", encoded.body
    )
    validate(encoded.body)
    assert encoded.unwrap_forced_json is not structured_outputs
    if structured_outputs:
        assert encoded.body["output_config"]["format"]["type"] == "json_schema"
        assert encoded.body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    else:
        assert encoded.body["tool_choice"] == {"type": "tool", "name": codec.FORCED_JSON_TOOL}
        assert "thinking" not in encoded.body and "reasoning_effort" in encoded.dropped


def test_json_object_always_uses_the_forced_tool() -> None:
    chat = Chat(
        model="claude-x",
        messages=(Message("user", (Text("json please"),)),),
        response_format=ResponseFormat("json_object"),
    )
    encoded = encode(chat)
    assert encoded.unwrap_forced_json
    assert encoded.body["tools"][-1]["name"] == codec.FORCED_JSON_TOOL
    assert encoded.body["tools"][-1]["input_schema"] == {"type": "object"}
    assert "output_config" not in encoded.body


def test_forced_json_with_client_tools_lets_the_model_choose_among_them() -> None:
    tools = (Tool("lookup", parameters={"type": "object", "properties": {}}),)
    chat = Chat(
        model="claude-x",
        messages=(Message("user", (Text("x"),)),),
        tools=tools,
        response_format=ResponseFormat("json_schema", schema={"type": "object"}),
    )
    encoded = encode(chat, so=False)
    assert [tool["name"] for tool in encoded.body["tools"]] == ["lookup", codec.FORCED_JSON_TOOL]
    assert encoded.body["tool_choice"] == {"type": "any"}


def test_a_json_schema_whose_root_is_not_an_object_needs_structured_outputs() -> None:
    chat = Chat(
        model="claude-x",
        messages=(Message("user", (Text("x"),)),),
        response_format=ResponseFormat("json_schema", schema={"type": "array"}),
    )
    assert encode(chat).body["output_config"]["format"]["schema"] == {"type": "array"}
    with pytest.raises(UnsupportedParameter):
        encode(chat, so=False)


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "thinking", "dropped"),
    [
        (Reasoning(effort="low"), None, {"type": "enabled", "budget_tokens": 2048}, ()),
        (Reasoning(effort="high"), None, {"type": "enabled", "budget_tokens": 16384}, ()),
        (Reasoning(effort="high"), 4096, {"type": "enabled", "budget_tokens": 3072}, ()),
        (Reasoning(budget_tokens=5000), 8000, {"type": "enabled", "budget_tokens": 5000}, ()),
        (Reasoning(effort="medium"), 1500, None, ("reasoning_effort",)),
        (Reasoning(effort="minimal"), None, None, ()),
    ],
)
def test_reasoning_becomes_a_thinking_budget_below_max_tokens(
    reasoning: Reasoning, max_tokens: int | None, thinking: Any, dropped: tuple[str, ...]
) -> None:
    chat = Chat(
        model="claude-x",
        messages=(Message("user", (Text("x"),)),),
        reasoning=reasoning,
        max_tokens=max_tokens,
        temperature=0.2,
    )
    encoded = encode(chat, default_max_tokens=32000)
    assert encoded.body.get("thinking") == thinking
    if thinking:
        assert thinking["budget_tokens"] < encoded.body["max_tokens"]
        assert "temperature" not in encoded.body and "temperature" in encoded.dropped
    else:
        assert encoded.body["temperature"] == 0.2
    assert set(dropped) <= set(encoded.dropped)


def test_thinking_is_dropped_when_the_continued_tool_turn_has_no_thinking_block() -> None:
    messages = (
        Message("user", (Text("x"),)),
        Message("assistant", (ToolCall("c1", "t", {"a": 1}),)),
        Message("user", (ToolResult("c1", (Text("ok"),)),)),
    )
    chat = Chat(model="claude-x", messages=messages, reasoning=Reasoning(effort="high"))
    assert "thinking" not in encode(chat).body
    signed = (Message("assistant", (Thinking("hmm", signature="s"), ToolCall("c1", "t", {"a": 1}))),)
    chat = Chat(
        model="claude-x", messages=(messages[0], *signed, messages[2]), reasoning=Reasoning(effort="high")
    )
    body = encode(chat, default_max_tokens=32000).body
    assert body["thinking"]["type"] == "enabled"
    assert body["messages"][1]["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "s"}


def test_unsigned_thinking_empty_text_and_other_formats_extras_are_not_sent() -> None:
    chat = Chat(
        model="claude-x",
        messages=(
            Message("user", (Text("x", extras={"openai": {"name": "bob"}}),)),
            Message("assistant", (Thinking("from another vendor"), Text(""))),
            Message("user", (Text("y"),)),
        ),
        system=(Text("sys", extras={"anthropic": {"cache_control": {"type": "ephemeral"}}}),),
    )
    encoded = encode(chat)
    assert encoded.body["messages"] == [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]
    assert encoded.body["system"] == [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]


def test_an_unsupported_image_type_is_a_400() -> None:
    chat = Chat(model="claude-x", messages=(Message("user", (Image(media_type="image/bmp", data="AAAA"),)),))
    with pytest.raises(UnsupportedParameter) as caught:
        encode(chat)
    assert caught.value.param == "messages.0.content.0"


def test_tool_choice_mapping() -> None:
    tools = (Tool("t"),)
    base = Chat(model="claude-x", messages=(Message("user", (Text("x"),)),), tools=tools)
    cases = {
        None: None,
        ToolChoice("auto"): None,
        ToolChoice("none"): {"type": "none"},
        ToolChoice("required"): {"type": "any"},
        ToolChoice("tool", "t"): {"type": "tool", "name": "t"},
    }
    for choice, expected in cases.items():
        chat = Chat(**{**_fields(base), "tool_choice": choice})
        assert encode(chat).body.get("tool_choice") == expected
    no_parallel = Chat(**{**_fields(base), "parallel_tool_calls": False})
    assert encode(no_parallel).body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert (
        "tool_choice"
        not in encode(Chat(model="c", messages=base.messages, tool_choice=ToolChoice("auto"))).body
    )


def _fields(chat: Chat) -> dict[str, Any]:
    return {name: getattr(chat, name) for name in chat.__dataclass_fields__}


# ---------------------------------------------------------------- round trips

_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=["Cs"]), min_size=1, max_size=20
)
_word = st.text(st.characters(categories=["L", "Nd"]), min_size=1, max_size=10)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_args = st.dictionaries(_text, _json_value, max_size=3)
_ids = st.from_regex(r"toolu_[a-z0-9]{4}", fullmatch=True)
_cache = st.sampled_from([{}, {"anthropic": {"cache_control": {"type": "ephemeral"}}}])
_texts = st.builds(Text, _text, _cache)
_images = st.one_of(
    st.builds(Image, media_type=st.sampled_from(["image/png", "image/jpeg"]), data=st.just("iVBORw0KGgo=")),
    st.builds(Image, url=st.just("https://example.com/a.png")),
)
_user_blocks = st.lists(st.one_of(_texts, _images), min_size=1, max_size=3)
_assistant_blocks = st.lists(
    st.one_of(
        _texts,
        st.builds(ToolCall, _ids, st.sampled_from(["Read", "get_weather"]), _args),
        st.builds(Thinking, _text, signature=st.just("sig")),
        st.builds(Thinking, redacted=st.just("ENC")),
    ),
    min_size=1,
    max_size=3,
)
_results = st.lists(
    st.builds(ToolResult, _ids, st.lists(st.one_of(_texts, _images), max_size=2).map(tuple), st.booleans()),
    min_size=1,
    max_size=2,
)


@st.composite
def chats(draw: st.DrawFn) -> Chat:
    """Chats in the codec's canonical form: alternating turns, tool results leading their user turn."""
    messages = []
    for i in range(draw(st.integers(1, 4))):
        role = "user" if i % 2 == 0 else "assistant"
        if role == "user":
            blocks = (draw(_results) if i and draw(st.booleans()) else []) + draw(_user_blocks)
        else:
            blocks = draw(_assistant_blocks)
        messages.append(Message(role, tuple(blocks)))
    tools = draw(
        st.lists(
            st.builds(Tool, st.sampled_from(["Read", "Bash"]), st.none() | _text),
            max_size=2,
            unique_by=lambda t: t.name,
        )
    )
    return Chat(
        model="claude-x",
        messages=tuple(messages),
        system=tuple(draw(st.lists(_texts, max_size=2))),
        tools=tuple(tools),
        tool_choice=draw(st.sampled_from([None, ToolChoice("required"), ToolChoice("none")]))
        if tools
        else None,
        max_tokens=draw(st.integers(1, 64000)),
        temperature=draw(st.none() | st.floats(0, 1)),
        stop=tuple(draw(st.lists(_word, max_size=2))),
        user=draw(st.none() | _text),
        stream=draw(st.booleans()),
    )


def _canonical(chat: Chat) -> Chat:
    """What survives the trip: system text joined when no block carries extras, single plain texts."""
    if chat.system and all(not text.extras for text in chat.system):
        system: tuple[Text, ...] = (Text("\n\n".join(text.text for text in chat.system)),)
    else:
        system = chat.system
    return Chat(**{**_fields(chat), "system": system})


@settings(max_examples=150, deadline=None)
@given(chats())
def test_encode_then_decode_gives_the_chat_back(chat: Chat) -> None:
    encoded = encode(chat)
    assert encoded.dropped == () and encoded.clamped == ()
    data = validate(json.loads(orjson.dumps(encoded.body)))
    assert codec.decode_request(data) == _canonical(chat)


@settings(max_examples=100, deadline=None)
@given(chats())
def test_decode_then_encode_gives_the_body_back(chat: Chat) -> None:
    wire = encode(chat).body
    again = encode(codec.decode_request(wire)).body
    assert again == wire


# ---------------------------------------------------------------- responses


def test_decode_and_encode_a_response() -> None:
    message = load("response_message.input.json")
    result = codec.decode_response(message)
    check_golden("response_message.result.json", result)
    assert result.usage == Usage(
        input_tokens=120, output_tokens=45, cache_read_tokens=1000, cache_write_tokens=30
    )
    assert result.stop_reason == "tool_use"
    assert [type(block) for block in result.content] == [Thinking, Text, ToolCall]  # server tool use left out
    check_golden("response_message.encoded.json", codec.encode_response(result))


def test_unwrap_the_forced_json_tool() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "tool_use", "id": "t", "name": codec.FORCED_JSON_TOOL, "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    result = codec.decode_response(message, unwrap_forced_json=True)
    assert result.content == (Text('{"city":"Paris"}'),) and result.stop_reason == "end_turn"
    assert isinstance(codec.decode_response(message).content[0], ToolCall)


@pytest.mark.parametrize(
    ("raw", "neutral"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("tool_use", "tool_use"),
        ("refusal", "refusal"),
        ("pause_turn", "pause_turn"),
        ("model_context_window_exceeded", "max_tokens"),
        ("something_new", "end_turn"),
        (None, None),
    ],
)
def test_stop_reasons(raw: str | None, neutral: str | None) -> None:
    assert codec.stop_reason_of(raw) == neutral


def test_encode_response_ids_and_empty_text() -> None:
    result = ChatResult(
        id="chatcmpl-9",
        model="gpt-4o-mini",
        content=(Text(""), ToolCall("call_1", "Read", {"file_path": "x"})),
        stop_reason="tool_use",
        usage=Usage(input_tokens=5, output_tokens=3, cache_read_tokens=2),
    )
    encoded = codec.encode_response(result)
    assert encoded["id"] == "msg_chatcmpl-9"
    assert encoded["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "x"}}
    ]
    assert encoded["usage"] == {
        "input_tokens": 5,
        "output_tokens": 3,
        "cache_read_input_tokens": 2,
        "cache_creation_input_tokens": 0,
    }
    assert codec.encode_response(ChatResult("msg_1", "m", (), None, Usage()))["stop_reason"] == "end_turn"
    assert codec.message_id("msg_abc") == "msg_abc" and codec.message_id("").startswith("msg_")


def test_encode_response_is_what_the_sdk_reads() -> None:
    import anthropic.types

    result = codec.decode_response(load("response_message.input.json"))
    message = anthropic.types.Message.model_validate(codec.encode_response(result))
    assert message.content[2].type == "tool_use" and message.usage.cache_read_input_tokens == 1000


# ---------------------------------------------------------------- errors, passthrough, counts


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_types_by_status(status: int, kind: str) -> None:
    assert codec.error_type_for_status(status) == kind


def test_error_body_shape() -> None:
    assert codec.error_body("rate_limit_error", "slow down", "req_1") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": "req_1",
    }


def test_prepare_passthrough_changes_only_what_it_must() -> None:
    data = validate(load("claude_code_request.input.json"))
    data["thinking"] = {"type": "enabled", "budget_tokens": 20000, "display": "summarized"}
    original = json.loads(json.dumps(data))
    prepared = codec.prepare_passthrough(data, remove=("temperature", "top_p"), max_tokens_limit=16384)
    assert data == original  # the client's dict is left alone
    assert prepared.dropped == ("temperature",)
    assert prepared.clamped == ("max_tokens", "thinking.budget_tokens")
    assert prepared.body["max_tokens"] == 16384
    assert prepared.body["thinking"] == {"type": "enabled", "budget_tokens": 15360, "display": "summarized"}
    untouched = {key: value for key, value in prepared.body.items() if key not in ("max_tokens", "thinking")}
    assert untouched == {
        key: value for key, value in original.items() if key not in ("max_tokens", "thinking", "temperature")
    }
    assert codec.prepare_passthrough(data).body == data


def test_usage_of_a_relayed_answer() -> None:
    assert codec.usage_of(load("response_message.input.json")) == Usage(120, 45, 1000, 30)
    assert codec.usage_of({"content": []}) == Usage()


def test_token_estimate_does_not_under_count_english_or_code() -> None:
    samples = load("token_samples.json")
    for name in ("issue_style", "docstrings", "code_py", "json", "numbers"):
        sample = samples[name]
        estimate = codec.count_tokens.estimate_text_tokens(sample["text"])
        for tokenizer in ("o200k", "cl100k"):
            ratio = estimate / sample[tokenizer]
            assert 0.98 <= ratio <= 1.25, (name, tokenizer, ratio)


def test_token_estimate_of_a_chat() -> None:
    chat = codec.decode_request(validate(load("claude_code_request.input.json")))
    estimate = codec.estimate_input_tokens(chat)
    texts = codec.count_tokens.estimate_text_tokens
    assert estimate > texts("You are Claude Code") + 2 * codec.count_tokens.PER_IMAGE
    bigger = Chat(
        **{**_fields(chat), "messages": (*chat.messages, Message("user", (Text("more words here"),)))}
    )
    assert codec.estimate_input_tokens(bigger) > estimate


# ---------------------------------------------------------------- any valid body: a Chat or a 400

_short = st.text(max_size=12)
_extra = st.fixed_dictionaries(
    {},
    optional={
        "cache_control": st.just({"type": "ephemeral"}),
        "citations": st.none() | st.just([]),
        "future": _json_value,
    },
)
_source = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("base64"), "media_type": st.just("image/gif"), "data": st.just("R0lG")}
    ),
    st.fixed_dictionaries({"type": st.just("url"), "url": st.just("https://example.com/x.png")}),
    st.fixed_dictionaries({"type": st.just("file"), "file_id": _short}),
)
_part = st.one_of(
    st.builds(lambda text, extra: {**extra, "type": "text", "text": text}, _short, _extra),
    st.fixed_dictionaries({"type": st.just("image"), "source": _source}),
    st.fixed_dictionaries({"type": st.just("search_result"), "title": _short}),
)
_wire_block = st.one_of(
    _part,
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": _word, "name": _word, "input": _args}),
    st.fixed_dictionaries(
        {"type": st.just("tool_result"), "tool_use_id": _word},
        optional={"content": _short | st.lists(_part, max_size=2), "is_error": st.booleans()},
    ),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": _short, "signature": _short}),
    st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": _short}),
    st.fixed_dictionaries({"type": st.just("server_tool_use"), "id": _word}),
)
_wire_message = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant"]),
            "content": _text | st.lists(_wire_block, min_size=1, max_size=4),
        }
    ),
    st.fixed_dictionaries({"role": st.just("system"), "content": _text}),
)
_tool_name = st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True)
_wire_tool = st.one_of(
    st.fixed_dictionaries(
        {
            "name": _tool_name,
            "input_schema": st.just({"type": "object", "properties": {"a": {"type": "string"}}}),
        },
        optional={"description": _short, "cache_control": st.just({"type": "ephemeral"})},
    ),
    st.fixed_dictionaries({"type": st.just("web_search_20250305"), "name": st.just("web_search")}),
)
_wire_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["claude-x", "gpt-4o"]),
        "max_tokens": st.integers(0, 100_000),
        "messages": st.lists(_wire_message, min_size=1, max_size=5),
    },
    optional={
        "system": _short
        | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": _short}), max_size=2),
        "tools": st.lists(_wire_tool, max_size=3),
        "tool_choice": st.one_of(
            st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "none"])}),
            st.fixed_dictionaries(
                {"type": st.just("tool"), "name": _word},
                optional={"disable_parallel_tool_use": st.booleans()},
            ),
        ),
        "thinking": st.one_of(
            st.fixed_dictionaries({"type": st.just("enabled"), "budget_tokens": st.integers(1024, 50_000)}),
            st.fixed_dictionaries({"type": st.sampled_from(["adaptive", "disabled"])}),
        ),
        "output_config": st.fixed_dictionaries(
            {},
            optional={
                "effort": st.sampled_from(["low", "max", "turbo"]),
                "format": st.just({"type": "json_schema", "schema": {"type": "object"}}),
            },
        ),
        "metadata": st.fixed_dictionaries({}, optional={"user_id": _short, "tenant": _short}),
        "stop_sequences": st.lists(_short, max_size=3),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(0, 500),
        "stream": st.booleans(),
        "context_management": st.just({"edits": []}),
    },
)


@settings(max_examples=150, deadline=None)
@given(_wire_bodies)
def test_any_valid_body_decodes_to_a_chat_or_a_named_400(data: dict[str, Any]) -> None:
    validated = validate(data)
    try:
        chat = codec.decode_request(validated)
    except UnsupportedParameter as exc:
        assert exc.status_code == 400 and exc.param and exc.message.startswith(exc.param)
        return
    assert codec.estimate_input_tokens(chat) > 0
    for structured in (True, False):
        try:
            encoded = encode(chat, so=structured)
        except UnsupportedParameter as exc:
            assert exc.param
            continue
        validate(json.loads(orjson.dumps(encoded.body)))
        assert set(chat.unmapped) <= set(encoded.dropped)
