"""Adapter for Anthropic's Messages API, over a transport (providers/transport.py): the pooled HTTP
client by default, the official `anthropic` SDK's client with LLM_HTTP_CLIENT=sdk.

The transport sends the body and hands back the answer's bytes or byte stream; bodies and events are read
with orjson and converted by the Anthropic codec (llm_api.codecs.anthropic_messages), not built into the
SDK's Pydantic models, which cost more CPU than the rest of the gateway's hot path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

from llm_api.chat_model import Chat, ChatResult, EventBatch, StreamEvent, Usage
from llm_api.codecs import WRONG_SHAPE, anthropic_messages
from llm_api.errors import UpstreamConnectionFailed, UpstreamError, upstream_error_for_status
from llm_api.services.capabilities import ModelCapabilities
from llm_api.services.providers._common import (
    OutcomeTracker,
    parse_json_object,
    unusable_response,
)
from llm_api.services.providers._sse import EndOfStream, UpstreamEvent, relay_item_batches, sse_frame
from llm_api.services.providers.base import (
    EncodedBody,
    FittedBody,
    Outcome,
    ProviderRequest,
    RawFrames,
    RelayedResponse,
)
from llm_api.services.providers.transport import Transport, UpstreamStream

NAME = "anthropic"
MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
T = TypeVar("T")
# Events before the answer's first delta: an error after them can still be retried.
OPENING_EVENTS = frozenset({"message_start", "ping", "content_block_start", ""})
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


def direct_headers(api_key: str | None) -> dict[str, str]:
    """What the direct transport sends on every call (a keyless deployment sends no key)."""
    headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def error_kind_of(body: object) -> str | None:
    """`error.type` of an error answer's JSON body (`overloaded_error`, `rate_limit_error`, ...)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    return kind if isinstance(kind, str) else None


def _decode(decode: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a codec decoder on upstream data: a shape it cannot read is an unusable response (502)."""
    try:
        return decode(*args, **kwargs)
    except WRONG_SHAPE as exc:
        raise unusable_response(NAME) from exc


def _stream_error(error: object) -> UpstreamError:
    """An `error` event inside a 200 stream, e.g. overloaded_error (retryable before the first item)."""
    kind = error.get("type") if isinstance(error, Mapping) else None
    return upstream_error_for_status(200, provider=NAME, error_kind=kind if isinstance(kind, str) else None)


def _event_type(raw: UpstreamEvent, event: Mapping[str, Any]) -> str:
    kind = event.get("type")
    return kind if isinstance(kind, str) else raw.name


class AnthropicProvider:
    """Claude models (the transport never retries; the service does)."""

    name = NAME
    wire_format = "anthropic"

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def encode(self, chat: Chat, capabilities: ModelCapabilities) -> EncodedBody:
        encoded = anthropic_messages.encode_request(
            chat,
            default_max_tokens=capabilities.default_max_tokens,
            structured_outputs=capabilities.structured_outputs,
        )
        return EncodedBody(
            body=encoded.body,
            dropped=tuple(encoded.dropped),
            clamped=tuple(encoded.clamped),
            unwrap_json_tool=encoded.unwrap_forced_json,
        )

    def fit(self, body: Mapping[str, Any], capabilities: ModelCapabilities) -> FittedBody:
        fitted = anthropic_messages.prepare_passthrough(
            body,
            remove=[name for name in body if not capabilities.takes(name)],
            max_tokens_limit=capabilities.max_output_tokens,
        )
        return FittedBody(body=fitted.body, dropped=fitted.dropped, clamped=fitted.clamped)

    async def _post(
        self, request: ProviderRequest, body: Mapping[str, Any], *, path: str = MESSAGES
    ) -> bytes:
        return await self._transport.post_json(path, body, headers=request.headers, query=request.query)

    async def _open(self, request: ProviderRequest) -> UpstreamStream:
        return await self._transport.post_stream(
            MESSAGES, request.body, headers=request.headers, query=request.query
        )

    async def complete(self, request: ProviderRequest) -> ChatResult:
        message = parse_json_object(await self._post(request, request.body), provider=NAME)
        result: ChatResult = _decode(
            anthropic_messages.decode_response, message, unwrap_forced_json=request.unwrap_json_tool
        )
        return result

    async def relay(self, request: ProviderRequest) -> RelayedResponse:
        content = await self._post(request, request.body)
        message = parse_json_object(content, provider=NAME)
        usage: Usage = _decode(anthropic_messages.usage_of, message)
        stop = message.get("stop_reason")
        outcome = Outcome(
            id=str(message.get("id", "")),
            model=str(message.get("model", "")),
            stop_reason=stop if isinstance(stop, str) else None,
            usage=usage,
        )
        return RelayedResponse(body=content, outcome=outcome)

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[EventBatch | Outcome, None]:
        upstream = await self._open(request)
        decoder = anthropic_messages.StreamDecoder(unwrap_forced_json=request.unwrap_json_tool)
        tracker = OutcomeTracker()
        finished = False

        def events_of(raw: UpstreamEvent) -> list[StreamEvent]:
            nonlocal finished
            if raw.name == "ping" or not raw.data:
                return []
            event = parse_json_object(raw.data, provider=NAME)
            kind = _event_type(raw, event)
            if kind == "error":
                raise _stream_error(event.get("error"))
            if kind == "message_stop":
                finished = True
                raise EndOfStream
            return tracker.track(_decode(decoder.feed, kind, event))

        async with aclosing(relay_item_batches(upstream, events_of)) as batches:
            async for events in batches:
                yield EventBatch(tuple(events))
        if not finished or not tracker.ended:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield tracker.outcome()

    async def relay_stream(self, request: ProviderRequest) -> AsyncGenerator[RawFrames | Outcome, None]:
        upstream = await self._open(request)
        observer = anthropic_messages.PassthroughStreamObserver()
        stop_frame = b""

        def frames_of(raw: UpstreamEvent) -> tuple[tuple[bytes, bool], ...]:
            nonlocal stop_frame
            if raw.data:
                _decode(observer.observe, raw.name, raw.data)
                if observer.error is not None:
                    raise _stream_error(observer.error)
                if observer.done:
                    stop_frame = sse_frame(raw)
                    raise EndOfStream
            return ((sse_frame(raw), raw.name not in OPENING_EVENTS),)

        async with aclosing(relay_item_batches(upstream, frames_of)) as batches:
            async for frames in batches:
                yield RawFrames(b"".join(f for f, _ in frames), content=any(c for _, c in frames))
        if not stop_frame:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield RawFrames(stop_frame)
        yield Outcome(
            id=observer.id or "",
            model=observer.model or "",
            stop_reason=observer.stop_reason,
            usage=observer.usage,
        )

    async def count_tokens(self, request: ProviderRequest) -> int | None:
        answer = parse_json_object(await self._post(request, request.body, path=COUNT_TOKENS), provider=NAME)
        count = answer.get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool):
            raise unusable_response(NAME)
        return count

    async def aclose(self) -> None:
        await self._transport.aclose()
