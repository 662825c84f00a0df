"""Adapter for OpenAI's Chat Completions API through the official `openai` SDK's client.

The SDK client sends the request (bearer auth, base URL, timeouts, status errors) and hands back the raw
HTTP response; the body and each streamed chunk are read with orjson. `chat.completions.create`'s typed
transform of its ~50 parameters and its Pydantic model per chunk were most of a worker's CPU (bench).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx2
import openai
from openai._types import RequestOptions

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

NAME = "openai"
CHAT_COMPLETIONS = "/chat/completions"
# What `chat.completions.create` passes to the SDK client's `post`.
REQUEST_OPTIONS: RequestOptions = {"security": {"bearer_auth": True}}
DONE = b"[DONE]"

SDK_ERRORS = SdkErrors(openai.APIConnectionError, openai.APIStatusError)


def translate_error(exc: BaseException) -> UpstreamError:
    return translate_sdk_error(exc, provider=NAME, sdk=SDK_ERRORS)


def _body(request: ProviderRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        request.max_tokens_param: request.max_tokens,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def _completion(response: dict[str, Any]) -> Completion:
    choices = response.get("choices") or ()
    choice = choices[0] if choices else {}
    usage = response.get("usage") or {}
    return Completion(
        id=str(response.get("id", "")),
        content=(choice.get("message") or {}).get("content") or "",
        model=str(response.get("model", "")),
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        stop_reason=normalise_stop_reason(choice.get("finish_reason")),
    )


def _apply_chunk(chunk: dict[str, Any], summary: StreamSummary) -> list[str]:
    """Fold one `chat.completion.chunk` into `summary`; the texts of its deltas."""
    texts: list[str] = []
    try:
        summary.id = summary.id or str(chunk.get("id", ""))
        summary.model = summary.model or str(chunk.get("model", ""))
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                texts.append(str(text))
            if choice.get("finish_reason"):
                summary.stop_reason = normalise_stop_reason(choice["finish_reason"])
        usage = chunk.get("usage")
        if usage:
            summary.input_tokens = int(usage.get("prompt_tokens") or 0)
            summary.output_tokens = int(usage.get("completion_tokens") or 0)
    except WRONG_SHAPE as exc:
        raise unusable_response(NAME) from exc
    return texts


class OpenAIProvider:
    """OpenAI models via `AsyncOpenAI` (its own retries off; the service retries)."""

    name = NAME

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    async def _post(self, body: dict[str, Any], *, stream: bool) -> httpx2.Response:
        try:
            return await self._client.post(
                CHAT_COMPLETIONS, body=body, cast_to=httpx2.Response, options=REQUEST_OPTIONS, stream=stream
            )
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_error(exc) from exc

    async def complete(self, request: ProviderRequest) -> Completion:
        response = await self._post(_body(request), stream=False)
        return parse_completion(response, _completion, provider=NAME)

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        body = {**_body(request), "stream": True, "stream_options": {"include_usage": True}}
        response = await self._post(body, stream=True)
        summary = StreamSummary()

        def texts_of(raw: UpstreamEvent) -> list[str]:
            if raw.data.startswith(DONE):
                raise EndOfStream
            if not raw.data:
                return []
            chunk = parse_json_object(raw.data, provider=NAME)
            if chunk.get("error"):
                # An error object in a 200 stream: a transient server error (retried before a delta).
                raise upstream_error_for_status(500, provider=NAME, error_kind="stream_error")
            return _apply_chunk(chunk, summary)

        async with aclosing(relay_text_deltas(response, texts_of, translate_error)) as deltas:
            async for item in deltas:
                yield item
        if summary.stop_reason is None:
            raise UpstreamConnectionFailed(f"{NAME} ended the stream early", provider=NAME)
        yield summary

    async def aclose(self) -> None:
        await self._client.close()
