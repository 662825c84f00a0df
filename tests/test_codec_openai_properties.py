"""Property: any valid OpenAI body → neutral → OpenAI body → neutral gives the same neutral chat."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api.codecs.openai_chat import decode_request, encode_request, validate_request
from llm_api.errors import InvalidRequest, UnsupportedParameter
from tests.openai_codec_support import neutral

texts = st.text(max_size=12)
names = st.from_regex(r"[a-zA-Z0-9_-]{1,12}", fullmatch=True)
json_objects = st.dictionaries(
    st.text(max_size=4),
    st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=4), st.booleans(), st.none()),
    max_size=3,
)
cache_point = st.just({"prompt_cache_breakpoint": {"mode": "explicit"}})


@st.composite
def text_part(draw: st.DrawFn) -> dict[str, Any]:
    extra = draw(st.one_of(st.just({}), cache_point))
    return {"type": "text", "text": draw(texts), **extra}


@st.composite
def image_part(draw: st.DrawFn) -> dict[str, Any]:
    media = draw(st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]))
    url = draw(
        st.sampled_from([f"data:{media};base64,iVBORw0KGgo=", "https://example.com/a.png", "http://x/y"])
    )
    image_url: dict[str, Any] = {"url": url}
    if draw(st.booleans()):
        image_url["detail"] = draw(st.sampled_from(["low", "high", "auto"]))
    return {"type": "image_url", "image_url": image_url}


def content(parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return st.one_of(texts, st.lists(parts, min_size=1, max_size=3))


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 2))):
        role = draw(st.sampled_from(["system", "developer"]))
        messages.append({"role": role, "content": draw(content(text_part()))})
    call_number = 0
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["user", "assistant", "system"]))
        if kind == "user":
            message: dict[str, Any] = {
                "role": "user",
                "content": draw(content(st.one_of(text_part(), image_part()))),
            }
            if draw(st.booleans()):
                message["name"] = draw(names)
            messages.append(message)
        elif kind == "system":
            messages.append({"role": "system", "content": draw(content(text_part()))})
        else:
            calls = []
            for _ in range(draw(st.integers(0, 3))):
                call_number += 1
                arguments = orjson.dumps(draw(json_objects)).decode() if draw(st.booleans()) else ""
                calls.append(
                    {
                        "id": f"call_{call_number}",
                        "type": "function",
                        "function": {"name": draw(names), "arguments": arguments},
                    }
                )
            message = {"role": "assistant", "content": draw(st.one_of(st.none(), texts))}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
            for call in calls:
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": draw(content(text_part()))}
                )
    return messages


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(names), "messages": draw(conversation())}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "max_tokens": st.integers(1, 100_000),
        "max_completion_tokens": st.integers(1, 100_000),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "stop": st.one_of(texts, st.lists(texts, max_size=4)),
        "user": texts,
        "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max"]),
        "response_format": st.one_of(
            st.just({"type": "text"}),
            st.just({"type": "json_object"}),
            st.builds(
                lambda name, strict: {
                    "type": "json_schema",
                    "json_schema": {"name": name, "schema": {"type": "object"}, **strict},
                },
                names,
                st.sampled_from([{}, {"strict": True}, {"strict": False}]),
            ),
        ),
        "stream": st.booleans(),
        "stream_options": st.builds(lambda flag: {"include_usage": flag}, st.booleans()),
        "n": st.integers(1, 3),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "presence_penalty": st.floats(-2, 2),
        "logit_bias": st.dictionaries(
            st.from_regex(r"[0-9]{1,5}", fullmatch=True), st.integers(-100, 100), max_size=2
        ),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    if draw(st.booleans()):
        tools = [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}, **extra}}
            for name, extra in draw(
                st.lists(st.tuples(names, st.sampled_from([{}, {"strict": True}])), min_size=1, max_size=3)
            )
        ]
        body["tools"] = tools
        choices = [
            st.sampled_from(["none", "auto", "required"]),
            st.sampled_from([t["function"]["name"] for t in tools]),
        ]
        choice = draw(st.one_of(*choices))
        body["tool_choice"] = (
            choice
            if choice in ("none", "auto", "required")
            else {"type": "function", "function": {"name": choice}}
        )
        if draw(st.booleans()):
            body["parallel_tool_calls"] = draw(st.booleans())
    return body


@settings(max_examples=100, deadline=None)
@given(bodies(), st.sampled_from(["max_tokens", "max_completion_tokens"]))
def test_decode_encode_decode_is_stable(body: dict[str, Any], max_tokens_param: Any) -> None:
    chat = decode_request(validate_request(orjson.dumps(body)))
    encoded = encode_request(chat, max_tokens_param=max_tokens_param)
    assert set(encoded.dropped) == set(chat.unmapped)
    again = decode_request(validate_request(orjson.dumps(encoded.body)))
    # What the encoder changes on purpose: unmapped parameters are dropped, and a stream always asks
    # for its usage.
    expected = dataclasses.replace(chat, unmapped={}, include_usage=chat.stream)
    assert without_empty_texts(neutral(again)) == without_empty_texts(neutral(expected))


def without_empty_texts(value: Any) -> Any:
    """Empty texts carry nothing: how many of them a round trip keeps is not part of the contract."""
    if isinstance(value, dict):
        return {key: without_empty_texts(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [without_empty_texts(item) for item in value]
        return [item for item in items if item != {"_": "Text", "text": ""}]
    return value


# ---------------------------------------------------------------- fuzz: odd but possibly valid bodies

ROLES = ["system", "developer", "user", "assistant", "tool", "function"]
PART_TYPES = ["text", "image_url", "refusal", "input_audio", "file", "other"]
URLS = [
    "data:image/png;base64,AA",
    "data:image/svg+xml;base64,AA",
    "https://x/a.png",
    "ftp://x",
    "data:,",
    "",
]
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3), st.text(max_size=3))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right kind of value, sometimes any JSON leaf."""
    return st.integers(0, 39).flatmap(lambda pick: leaf if pick == 0 else strategy)


def objects(
    required: dict[str, st.SearchStrategy[Any]] | None = None, **fields: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {name: maybe(value) for name, value in (required or {}).items()},
        optional={name: maybe(value) for name, value in fields.items()},
    )


parts = objects(
    {"type": st.sampled_from(PART_TYPES)},
    text=st.text(max_size=3),
    refusal=st.text(max_size=3),
    image_url=objects(url=st.sampled_from(URLS), detail=st.sampled_from(["low", "x"])),
)
calls = objects(
    {"id": st.text(max_size=3), "type": st.sampled_from(["function", "custom"])},
    function=objects(name=names, arguments=st.sampled_from(["", "{}", '{"a":1}', "[", "[]", "1"])),
)
messages = st.builds(
    lambda role, content, rest: {**rest, "role": role, "content": content},
    st.sampled_from(ROLES),
    st.one_of(st.text(max_size=3), st.lists(maybe(parts), max_size=3)),
    objects(
        tool_calls=st.lists(maybe(calls), max_size=2),
        tool_call_id=st.text(max_size=3),
        name=st.text(max_size=3),
        refusal=st.text(max_size=3),
        function_call=objects(name=names, arguments=st.just("{}")),
    ),
)
tools = objects(
    {"type": st.sampled_from(["function", "custom"])},
    function=objects(name=names, parameters=st.just({"type": "object"}), description=st.text(max_size=3)),
)
fuzz_bodies = st.builds(
    lambda required, rest: {**rest, **required},
    st.fixed_dictionaries({"model": names, "messages": st.lists(messages, min_size=1, max_size=4)}),
    objects(
        tools=st.lists(maybe(tools), max_size=2),
        tool_choice=st.one_of(
            st.sampled_from(["none", "auto", "required", "x"]),
            objects(type=st.sampled_from(["function", "allowed_tools"]), function=objects(name=names)),
        ),
        response_format=objects(
            type=st.sampled_from(["text", "json_object", "json_schema", "grammar"]),
            json_schema=objects(name=names, schema=st.just({"type": "object"}), strict=st.booleans()),
        ),
        stop=st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=5)),
        reasoning_effort=st.sampled_from(["none", "low", "max", "ultra"]),
        stream_options=objects(include_usage=st.booleans()),
        max_tokens=st.integers(0, 5),
        max_completion_tokens=st.integers(0, 5),
    ),
)


@settings(max_examples=200, deadline=None)
@given(fuzz_bodies)
def test_fuzz_any_body_is_accepted_or_a_named_4xx_and_encodes_validly(body: dict[str, Any]) -> None:
    """Never a crash (a 500): invalid is InvalidRequest, untranslatable is UnsupportedParameter."""
    try:
        validated = validate_request(orjson.dumps(body))
    except InvalidRequest:
        return
    try:
        chat = decode_request(validated)
    except UnsupportedParameter as exc:
        assert exc.param
        return
    encoded = encode_request(chat, max_tokens_param="max_tokens")
    validate_request(orjson.dumps(encoded.body))
