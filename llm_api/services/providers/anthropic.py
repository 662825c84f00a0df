"""Adapter for Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, cast

import anthropic
import httpx2
from anthropic.types import MessageParam

from llm_api.errors import UpstreamConnectionFailed, UpstreamError
from llm_api.services.providers._common import SdkErrors, translate_sdk_error
from llm_api.services.providers.base import (
    Completion,
    ProviderRequest,
    StreamItem,
    StreamSummary,
    TextDelta,
    normalise_stop_reason,
)

NAME = "anthropic"


SDK_ERRORS = SdkErrors(anthropic.APIError, anthropic.APIConnectionError, anthropic.APIStatusError)


def translate_error(exc: BaseException) -> UpstreamError:
    return translate_sdk_error(exc, provider=NAME, sdk=SDK_ERRORS)


class AnthropicProvider:
    """Claude models via `AsyncAnthropic` (its own retries off; the service retries)."""

    name = NAME

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._client = client

    def _arguments(self, request: ProviderRequest) -> dict[str, Any]:
        system = [m.content for m in request.messages if m.role == "system"]
        messages = [
            cast(MessageParam, {"role": m.role, "content": m.content})
            for m in request.messages
            if m.role != "system"
        ]
        arguments: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if system:
            arguments["system"] = "\n\n".join(system)
        if request.temperature is not None:
            # The current SDK has no `temperature` argument; older models still accept it in the body.
            arguments["extra_body"] = {"temperature": request.temperature}
        return arguments

    async def complete(self, request: ProviderRequest) -> Completion:
        try:
            message = await self._client.messages.create(**self._arguments(request))
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        return Completion(
            id=message.id,
            content=text,
            model=message.model,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            stop_reason=normalise_stop_reason(message.stop_reason),
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        try:
            events = await self._client.messages.create(**self._arguments(request), stream=True)
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc
        summary = StreamSummary()
        finished = False
        try:
            async for event in events:
                if event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        yield TextDelta(event.delta.text)
                elif event.type == "message_start":
                    summary.id = event.message.id
                    summary.model = event.message.model
                    summary.input_tokens = event.message.usage.input_tokens
                elif event.type == "message_delta":
                    summary.stop_reason = normalise_stop_reason(event.delta.stop_reason)
                    summary.output_tokens = event.usage.output_tokens
                    if event.usage.input_tokens:
                        summary.input_tokens = event.usage.input_tokens
                elif event.type == "message_stop":
                    finished = True
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc
        finally:
            await events.close()
        if not finished:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield summary

    async def aclose(self) -> None:
        await self._client.close()
