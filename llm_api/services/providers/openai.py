"""Adapter for OpenAI's Chat Completions API (and OpenAI-compatible servers), over a transport
(providers/transport.py): the pooled HTTP client by default, the official `openai` SDK's client with
LLM_HTTP_CLIENT=sdk.

The transport sends the body and hands back the answer's bytes or byte stream; bodies and chunks are read
with orjson and converted by the OpenAI codec (llm_api.codecs.openai_chat), not built into the SDK's
Pydantic models, which cost more CPU than the rest of the gateway's hot path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from llm_api.chat_model import Chat, ChatResult, EventBatch, StreamEvent, Usage
from llm_api.codecs import WRONG_SHAPE, openai_chat
from llm_api.errors import UpstreamConnectionFailed, UpstreamError, upstream_error_for_status
from llm_api.services.capabilities import ModelCapabilities
from llm_api.services.providers._common import (
    parse_json_object,
    unusable_response,
)
from llm_api.services.providers._sse import EndOfStream, UpstreamEvent, relay_item_batches
from llm_api.services.providers.base import (
    EncodedBody,
    FittedBody,
    Outcome,
    ProviderRequest,
    RawFrames,
    RelayedResponse,
)
from llm_api.services.providers.transport import Transport, UpstreamStream

NAME = "openai"
CHAT_COMPLETIONS = "/chat/completions"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEYLESS = "none"  # the key sent to a deployment that has none (the SDK refuses to go without one)
DONE = b"[DONE]"
DONE_FRAME = b"data: [DONE]\n\n"


def direct_headers(api_key: str | None) -> dict[str, str]:
    """What the direct transport sends on every call. A keyless OpenAI-compatible server gets the
    placeholder key the SDK transport sends: servers without auth ignore it, some insist on the header."""
    return {"content-type": "application/json", "authorization": f"Bearer {api_key or KEYLESS}"}


def error_kind_of(body: object) -> str | None:
    """The `type` of an error answer's `error` object (or of the body itself, as the SDK reads it)."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    return kind if isinstance(kind, str) else None


def _stream_error() -> UpstreamError:
    # An error object in a 200 stream: a transient server error (retried before the first item).
    return upstream_error_for_status(500, provider=NAME, error_kind="stream_error")


def _decode(decode: Any, *args: Any) -> Any:
    """Run a codec decoder on upstream data: a shape it cannot read is an unusable response (502)."""
    try:
        return decode(*args)
    except WRONG_SHAPE as exc:
        raise unusable_response(NAME) from exc


class OpenAIProvider:
    """OpenAI models (the transport never retries; the service does)."""

    name = NAME
    wire_format = "openai"

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def encode(self, chat: Chat, capabilities: ModelCapabilities) -> EncodedBody:
        encoded = openai_chat.encode_request(chat, max_tokens_param=capabilities.max_tokens_param)
        return EncodedBody(body=encoded.body, dropped=tuple(encoded.dropped))

    def fit(self, body: Mapping[str, Any], capabilities: ModelCapabilities) -> FittedBody:
        remove = [name for name in body if not capabilities.takes(name)]
        if not capabilities.reasoning and "reasoning_effort" in body:
            remove.append("reasoning_effort")
        wanted = capabilities.max_tokens_param
        fitted = openai_chat.prepare_passthrough(
            body,
            remove=remove,
            max_tokens_limit=capabilities.max_output_tokens,
            rename_max_tokens=wanted if wanted != "max_tokens" else None,
        )
        return FittedBody(body=fitted.body, dropped=fitted.dropped, clamped=fitted.clamped)

    async def _post(self, request: ProviderRequest) -> bytes:
        return await self._transport.post_json(
            CHAT_COMPLETIONS, request.body, headers=request.headers, query=request.query
        )

    async def _open(self, request: ProviderRequest) -> UpstreamStream:
        return await self._transport.post_stream(
            CHAT_COMPLETIONS, request.body, headers=request.headers, query=request.query
        )

    async def complete(self, request: ProviderRequest) -> ChatResult:
        result: ChatResult = _decode(
            openai_chat.decode_response, parse_json_object(await self._post(request), provider=NAME)
        )
        return result

    async def relay(self, request: ProviderRequest) -> RelayedResponse:
        content = await self._post(request)
        answer = parse_json_object(content, provider=NAME)
        usage: Usage = _decode(openai_chat.usage_of, answer)
        choices = answer.get("choices") or ()
        finish = choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else None
        outcome = Outcome(
            id=str(answer.get("id", "")), model=str(answer.get("model", "")), stop_reason=finish, usage=usage
        )
        return RelayedResponse(body=content, outcome=outcome)

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[EventBatch | Outcome, None]:
        upstream = await self._open(request)
        decoder = openai_chat.StreamDecoder()
        finished = False

        def events_of(raw: UpstreamEvent) -> list[StreamEvent]:
            nonlocal finished
            if raw.data.startswith(DONE):
                finished = True
                raise EndOfStream
            if not raw.data:
                return []
            chunk = parse_json_object(raw.data, provider=NAME)
            if chunk.get("error"):
                raise _stream_error()
            events: list[StreamEvent] = _decode(decoder.feed, chunk)
            return events

        async with aclosing(relay_item_batches(upstream, events_of)) as batches:
            async for events in batches:
                yield EventBatch(tuple(events))
        if not finished or decoder.stop_reason is None:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        tail: list[StreamEvent] = _decode(decoder.finish)
        if tail:
            yield EventBatch(tuple(tail))
        yield Outcome(
            id=decoder.id,
            model=decoder.model,
            stop_reason=decoder.stop_reason,
            usage=decoder.usage or Usage(),
        )

    async def relay_stream(self, request: ProviderRequest) -> AsyncGenerator[RawFrames | Outcome, None]:
        upstream = await self._open(request)
        observer = openai_chat.PassthroughStreamObserver(include_usage=request.include_usage)
        finished = False

        def frames_of(raw: UpstreamEvent) -> tuple[bytes, ...]:
            nonlocal finished
            if raw.data.startswith(DONE):
                finished = True
                raise EndOfStream
            if not raw.data:
                return ()
            forward = _decode(observer.observe, raw.data)
            if observer.error is not None:
                raise _stream_error()
            return (b"data: " + raw.data + b"\n\n",) if forward else ()

        async with aclosing(relay_item_batches(upstream, frames_of)) as batches:
            async for frames in batches:
                yield RawFrames(b"".join(frames))
        if not finished or observer.stop_reason is None:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield RawFrames(DONE_FRAME)
        yield Outcome(
            id=observer.id or "",
            model=observer.model or "",
            stop_reason=observer.stop_reason,
            usage=observer.usage or Usage(),
        )

    async def count_tokens(self, request: ProviderRequest) -> int | None:
        return None  # OpenAI has no token-counting endpoint for chat requests

    async def aclose(self) -> None:
        await self._transport.aclose()
