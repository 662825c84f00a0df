"""Adapter for OpenAI's Chat Completions API through the official `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import openai
from openai._types import RequestOptions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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

NAME = "openai"
CHAT_COMPLETIONS = "/chat/completions"
# What `chat.completions.create` passes to the SDK client's `post`, called directly here: our body is already
# wire JSON, and `create`'s typed transform of its ~50 parameters took ~18 % of a worker's CPU (bench).
REQUEST_OPTIONS: RequestOptions = {"security": {"bearer_auth": True}}


SDK_ERRORS = SdkErrors(openai.APIError, openai.APIConnectionError, openai.APIStatusError)


def translate_error(exc: BaseException) -> UpstreamError:
    return translate_sdk_error(exc, provider=NAME, sdk=SDK_ERRORS)


class OpenAIProvider:
    """OpenAI models via `AsyncOpenAI` (its own retries off; the service retries)."""

    name = NAME

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    @staticmethod
    def _body(request: ProviderRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            request.max_tokens_param: request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    async def complete(self, request: ProviderRequest) -> Completion:
        try:
            response = await self._client.post(
                CHAT_COMPLETIONS, body=self._body(request), cast_to=ChatCompletion, options=REQUEST_OPTIONS
            )
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return Completion(
            id=response.id,
            content=(choice.message.content or "") if choice else "",
            model=response.model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            stop_reason=normalise_stop_reason(choice.finish_reason if choice else None),
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        try:
            chunks = await self._client.post(
                CHAT_COMPLETIONS,
                body={**self._body(request), "stream": True, "stream_options": {"include_usage": True}},
                cast_to=ChatCompletion,
                options=REQUEST_OPTIONS,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc
        summary = StreamSummary()
        try:
            async for chunk in chunks:
                summary.id = summary.id or chunk.id
                summary.model = summary.model or chunk.model
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        summary.stop_reason = normalise_stop_reason(choice.finish_reason)
                if chunk.usage is not None:
                    summary.input_tokens = chunk.usage.prompt_tokens
                    summary.output_tokens = chunk.usage.completion_tokens
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc
        finally:
            await chunks.close()
        if summary.stop_reason is None:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield summary

    async def aclose(self) -> None:
        await self._client.close()
