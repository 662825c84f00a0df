"""Adapter for Anthropic's Messages API through the official `anthropic` SDK's client.

The SDK client sends the request (auth headers, base URL, timeouts, status errors) and hands back the raw
HTTP response; the body is read with orjson rather than built into the SDK's Pydantic models, which cost
more CPU than the rest of the gateway's hot path (bench/results/profile.collapsed.gz).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import anthropic
import httpx2

from llm_api.errors import UpstreamConnectionFailed, UpstreamError, upstream_error_for_status
from llm_api.services.providers._common import (
    WRONG_SHAPE,
    SdkErrors,
    parse_completion,
    parse_json_object,
    translate_sdk_error,
    unusable_response,
)
from llm_api.services.providers._sse import EndOfStream, UpstreamEvent, relay_text_deltas
from llm_api.services.providers.base import (
    Completion,
    ProviderRequest,
    StreamItem,
    StreamSummary,
    normalise_stop_reason,
)

NAME = "anthropic"
MESSAGES = "/v1/messages"

SDK_ERRORS = SdkErrors(anthropic.APIConnectionError, anthropic.APIStatusError)


def translate_error(exc: BaseException) -> UpstreamError:
    return translate_sdk_error(exc, provider=NAME, sdk=SDK_ERRORS)


def _body(request: ProviderRequest) -> dict[str, Any]:
    """The Messages API body: system messages joined into the top-level `system`."""
    system = [m.content for m in request.messages if m.role == "system"]
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _completion(message: dict[str, Any]) -> Completion:
    usage = message.get("usage") or {}
    text = "".join(block["text"] for block in message.get("content") or () if block.get("type") == "text")
    return Completion(
        id=str(message.get("id", "")),
        content=text,
        model=str(message.get("model", "")),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        stop_reason=normalise_stop_reason(message.get("stop_reason")),
    )


def _apply_event(kind: str, event: dict[str, Any], summary: StreamSummary) -> str | None:
    """Fold one stream event into `summary`; the text of a text delta, if it is one."""
    try:
        if kind == "content_block_delta":
            delta = event["delta"]
            return str(delta["text"]) if delta.get("type") == "text_delta" else None
        if kind == "message_start":
            message = event["message"]
            summary.id = str(message.get("id", ""))
            summary.model = str(message.get("model", ""))
            summary.input_tokens = int((message.get("usage") or {}).get("input_tokens") or 0)
        elif kind == "message_delta":
            usage = event.get("usage") or {}
            summary.stop_reason = normalise_stop_reason(event["delta"].get("stop_reason"))
            summary.output_tokens = int(usage.get("output_tokens") or 0)
            if usage.get("input_tokens"):
                summary.input_tokens = int(usage["input_tokens"])
    except WRONG_SHAPE as exc:
        raise unusable_response(NAME) from exc
    return None


def _stream_error(event: dict[str, Any]) -> UpstreamError:
    """An `error` event inside a 200 stream, e.g. overloaded_error (retryable before the first delta)."""
    error = event.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return upstream_error_for_status(200, provider=NAME, error_kind=kind if isinstance(kind, str) else None)


class AnthropicProvider:
    """Claude models via `AsyncAnthropic` (its own retries off; the service retries)."""

    name = NAME

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._client = client

    async def _post(self, body: dict[str, Any], *, stream: bool) -> httpx2.Response:
        try:
            return await self._client.post(MESSAGES, body=body, cast_to=httpx2.Response, stream=stream)
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc

    async def complete(self, request: ProviderRequest) -> Completion:
        response = await self._post(_body(request), stream=False)
        return parse_completion(response, _completion, provider=NAME)

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        response = await self._post({**_body(request), "stream": True}, stream=True)
        summary = StreamSummary()
        finished = False

        def texts_of(raw: UpstreamEvent) -> tuple[str, ...]:
            nonlocal finished
            if raw.name == "ping" or not raw.data:
                return ()
            event = parse_json_object(raw.data, provider=NAME)
            kind = event.get("type") or raw.name
            if kind == "error":
                raise _stream_error(event)
            if kind == "message_stop":
                finished = True
                raise EndOfStream
            text = _apply_event(kind, event, summary)
            return (text,) if text else ()

        async with aclosing(relay_text_deltas(response, texts_of, translate_error)) as deltas:
            async for item in deltas:
                yield item
        if not finished:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield summary

    async def aclose(self) -> None:
        await self._client.close()
