"""Adapter for Anthropic's Messages API through the official `anthropic` SDK's client.

The SDK client sends the request (auth headers, base URL, timeouts, status errors) and hands back the raw
HTTP response; bodies and events are read with orjson and converted by the Anthropic codec
(llm_api.codecs.anthropic_messages), not built into the SDK's Pydantic models, which cost more CPU than
the rest of the gateway's hot path (bench/results/profile.collapsed.gz).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

import anthropic
import httpx2
from anthropic._types import RequestOptions

from llm_api.chat_model import Chat, ChatResult, EventBatch, StreamEvent, Usage
from llm_api.codecs import anthropic_messages
from llm_api.errors import UpstreamConnectionFailed, UpstreamError, upstream_error_for_status
from llm_api.services.capabilities import ModelCapabilities
from llm_api.services.providers._common import (
    WRONG_SHAPE,
    OutcomeTracker,
    SdkErrors,
    parse_json_object,
    translate_sdk_error,
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

NAME = "anthropic"
MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
T = TypeVar("T")
# Events before the answer's first delta: an error after them can still be retried.
OPENING_EVENTS = frozenset({"message_start", "ping", "content_block_start", ""})

SDK_ERRORS = SdkErrors(anthropic.APIConnectionError, anthropic.APIStatusError)


def translate_error(exc: BaseException) -> UpstreamError:
    return translate_sdk_error(exc, provider=NAME, sdk=SDK_ERRORS)


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
    """Claude models via `AsyncAnthropic` (its own retries off; the service retries)."""

    name = NAME
    wire_format = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._client = client

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
    ) -> httpx2.Response:
        options: RequestOptions = {}
        if request.headers:
            options["headers"] = dict(request.headers)
        if request.query:
            options["params"] = dict(request.query)
        try:
            return await self._client.post(
                path, body=body, cast_to=httpx2.Response, options=options, stream=request.stream
            )
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc

    async def complete(self, request: ProviderRequest) -> ChatResult:
        response = await self._post(request, request.body)
        message = parse_json_object(response.content, provider=NAME)
        result: ChatResult = _decode(
            anthropic_messages.decode_response, message, unwrap_forced_json=request.unwrap_json_tool
        )
        return result

    async def relay(self, request: ProviderRequest) -> RelayedResponse:
        response = await self._post(request, request.body)
        content = response.content
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
        response = await self._post(request, request.body)
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

        async with aclosing(relay_item_batches(response, events_of, translate_error)) as batches:
            async for events in batches:
                yield EventBatch(tuple(events))
        if not finished or not tracker.ended:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield tracker.outcome()

    async def relay_stream(self, request: ProviderRequest) -> AsyncGenerator[RawFrames | Outcome, None]:
        response = await self._post(request, request.body)
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

        async with aclosing(relay_item_batches(response, frames_of, translate_error)) as batches:
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
        response = await self._post(request, request.body, path=COUNT_TOKENS)
        answer = parse_json_object(response.content, provider=NAME)
        count = answer.get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool):
            raise unusable_response(NAME)
        return count

    async def aclose(self) -> None:
        await self._client.close()
