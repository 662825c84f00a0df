"""The openai SDK itself as the client of the codec, in process (httpx2.MockTransport, no network).

What the SDK really sends (`chat.completions.create`, `.stream()` with strict Pydantic tools, `.parse()`
with a Pydantic response format, tool loops) must validate and decode; what the codec answers must be
read by the SDK's own parsing, accumulation and exception mapping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from llm_api.chat_model import (
    BlockStart,
    BlockStop,
    Chat,
    ChatResult,
    MessageDelta,
    MessageStart,
    StreamEvent,
    Text,
    TextDelta,
    ToolArgumentsDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from llm_api.codecs.openai_chat import (
    StreamEncoder,
    decode_request,
    encode_response,
    error_body,
    error_type_for_status,
    validate_request,
)
from llm_api.codecs.openai_chat._common import dump_arguments
from llm_api.errors import InvalidRequest, UnsupportedParameter

USAGE = Usage(input_tokens=12, output_tokens=5, cache_read_tokens=3)
MODEL = "claude-sonnet-4-5"


class GetWeather(BaseModel):
    city: str


class Answer(BaseModel):
    answer: str


def answer_for(chat: Chat) -> ChatResult:
    """A canned answer that fits the request: a tool call if tools are offered, JSON if asked for."""
    if chat.tools and (chat.tool_choice is None or chat.tool_choice.mode != "none"):
        last = chat.messages[-1].content
        if not any(isinstance(block, ToolResult) for block in last):
            call = ToolCall("call_w1", chat.tools[0].name, {"city": "Paris"})
            return ChatResult("msg_t", MODEL, (Text("Checking."), call), "tool_use", USAGE)
    if chat.response_format is not None and chat.response_format.kind == "json_schema":
        return ChatResult("msg_j", MODEL, (Text('{"answer": "42"}'),), "end_turn", USAGE)
    return ChatResult("msg_1", MODEL, (Text("Hello there"),), "end_turn", USAGE)


def events_of(result: ChatResult) -> Iterator[StreamEvent]:
    yield MessageStart(result.id, result.model, Usage(input_tokens=USAGE.input_tokens))
    for index, block in enumerate(result.content):
        if isinstance(block, Text):
            yield BlockStart(index, Text(""))
            for start in range(0, len(block.text), 3):
                yield TextDelta(index, block.text[start : start + 3])
        elif isinstance(block, ToolCall):
            yield BlockStart(index, ToolCall(block.id, block.name))
            arguments = dump_arguments(block.arguments)
            for start in range(0, len(arguments), 4):
                yield ToolArgumentsDelta(index, arguments[start : start + 4])
        yield BlockStop(index)
    yield MessageDelta(result.stop_reason, result.usage)


class Server:
    """Plays the gateway's /v1/chat/completions with nothing but the codec."""

    def __init__(self) -> None:
        self.chats: list[Chat] = []
        self.fail_stream = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        try:
            chat = decode_request(validate_request(request.read()))
        except (InvalidRequest, UnsupportedParameter) as exc:
            return httpx2.Response(400, json=error_body(exc.message, type=error_type_for_status(400)))
        self.chats.append(chat)
        result = answer_for(chat)
        if not chat.stream:
            return httpx2.Response(200, json=encode_response(result, created=int(time.time())))
        encoder = StreamEncoder(
            id=result.id, model=MODEL, created=int(time.time()), include_usage=chat.include_usage
        )
        events = list(events_of(result))
        if self.fail_stream:
            body = encoder.encode(events[:4]) + encoder.error("server_error", "the upstream failed")
        else:
            body = b"".join(encoder.encode([event]) for event in events) + encoder.done()
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    http = httpx2.Client(transport=httpx2.MockTransport(server))
    with openai.OpenAI(
        api_key="k", base_url="http://gateway.test/v1", http_client=http, max_retries=0
    ) as sdk:
        yield sdk


USER: Any = [{"role": "user", "content": "Weather in Paris?"}]


def test_create(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=USER, max_completion_tokens=50)
    assert completion.choices[0].message.content == "Hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None and completion.usage.prompt_tokens == 15
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 3


@pytest.mark.parametrize("include_usage", [True, False])
def test_create_stream(client: openai.OpenAI, include_usage: bool) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=USER, stream=True, stream_options={"include_usage": include_usage}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    if include_usage:
        assert (
            chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 20
        )
    else:
        assert all(c.choices for c in chunks)


def test_stream_helper_with_a_strict_pydantic_tool_then_the_tool_loop(
    client: openai.OpenAI, server: Server
) -> None:
    tools = [openai.pydantic_function_tool(GetWeather)]
    with client.chat.completions.stream(model=MODEL, messages=USER, tools=tools) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Checking."
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.function.parsed_arguments == GetWeather(city="Paris")
    assert server.chats[0].tools[0].name == "GetWeather"
    assert server.chats[0].tools[0].extras == {"openai": {"strict": True}}
    # The loop: the SDK's own assistant message, then the tool's answer.
    history: Any = [
        *USER,
        message.model_dump(exclude_none=True, exclude={"parsed"}),
        {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"},
    ]
    done = client.chat.completions.create(model=MODEL, messages=history, tools=tools)
    assert done.choices[0].message.content == "Hello there"
    turn = server.chats[-1].messages
    sent = turn[1].content[-1]
    assert isinstance(sent, ToolCall)
    assert (sent.id, sent.name, sent.arguments) == ("call_w1", "GetWeather", {"city": "Paris"})
    assert turn[2].content == (ToolResult("call_w1", (Text("18C, sunny"),)),)


def test_parse_with_a_pydantic_response_format(client: openai.OpenAI, server: Server) -> None:
    completion = client.chat.completions.parse(model=MODEL, messages=USER, response_format=Answer)
    assert completion.choices[0].message.parsed == Answer(answer="42")
    response_format = server.chats[0].response_format
    assert response_format is not None and response_format.name == "Answer" and response_format.strict is True
    with client.chat.completions.stream(model=MODEL, messages=USER, response_format=Answer) as stream:
        assert stream.get_final_completion().choices[0].message.parsed == Answer(answer="42")


def test_images_and_tools_from_the_sdk_types(client: openai.OpenAI, server: Server) -> None:
    messages: Any = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        },
    ]
    client.chat.completions.create(model=MODEL, messages=messages, temperature=0.5, stop=["x"], seed=4, n=1)
    chat = server.chats[0]
    assert chat.system == (Text("Be brief."),)
    assert chat.messages[0].content[1].media_type == "image/png"  # type: ignore[union-attr]
    assert dict(chat.unmapped) == {"seed": 4, "n": 1}


def test_errors_are_the_sdks_exceptions(client: openai.OpenAI) -> None:
    bad: Any = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=bad)
    assert "messages[0].content[0].image_url" in caught.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=USER, max_tokens="5")  # type: ignore[arg-type]


def test_in_stream_error_raises_in_the_sdk(client: openai.OpenAI, server: Server) -> None:
    server.fail_stream = True
    stream = client.chat.completions.create(model=MODEL, messages=USER, stream=True)
    with pytest.raises(openai.APIError, match="the upstream failed"):
        list(stream)
