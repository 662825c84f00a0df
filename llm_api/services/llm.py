"""The provider-agnostic chat service: routing, parameter capabilities, retries, usage."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from llm_api.errors import UnsupportedParameter
from llm_api.schemas import ChatRequest
from llm_api.services.capabilities import CapabilityTable
from llm_api.services.providers.base import (
    Completion,
    Message,
    Provider,
    ProviderRequest,
    StreamItem,
    StreamSummary,
    TextDeltas,
)
from llm_api.services.providers.registry import ProviderRegistry
from llm_api.services.retry import RetryObserver, RetryPolicy
from llm_api.utils.context import request_context


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A validated request bound to its provider, with what was dropped to fit the model."""

    provider: Provider
    request: ProviderRequest
    dropped_params: tuple[str, ...]


class ChatService:
    """Complete or stream a chat on whichever provider serves the model."""

    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        capabilities: CapabilityTable,
        retry_policy: RetryPolicy,
        default_model: str,
        drop_unsupported_params: bool,
        on_retry: RetryObserver | None = None,
    ) -> None:
        self._providers = providers
        self._capabilities = capabilities
        self._retry = retry_policy
        self._default_model = default_model
        self._drop_unsupported = drop_unsupported_params
        self._on_retry = on_retry

    def prepare(self, chat: ChatRequest) -> PreparedCall:
        """Route the request and fit its parameters to what the model accepts."""
        model = chat.model or self._default_model
        context = request_context()
        if context is not None:
            context.model = model
            context.stream = chat.stream
        provider = self._providers.for_model(model)
        if context is not None:
            context.provider = provider.name
        caps = self._capabilities.lookup(model)
        temperature: float | None = chat.temperature
        dropped: list[str] = []
        if not caps.temperature:
            temperature = None
            if "temperature" in chat.model_fields_set:
                if not self._drop_unsupported:
                    raise UnsupportedParameter(f"parameter 'temperature' is not supported by model '{model}'")
                dropped.append("temperature")
        if context is not None:
            context.dropped_params = dropped
        request = ProviderRequest(
            model=model,
            messages=tuple(Message(m.role, m.content) for m in chat.messages),
            max_tokens=chat.max_tokens,
            temperature=temperature,
            max_tokens_param=caps.max_tokens_param,
        )
        return PreparedCall(provider=provider, request=request, dropped_params=tuple(dropped))

    def _count_attempt(self, attempt: int) -> None:
        context = request_context()
        if context is not None:
            context.attempts = attempt

    async def complete(self, call: PreparedCall) -> Completion:
        """One answer, retried on transient upstream errors."""
        completion = await self._retry.call(
            lambda: call.provider.complete(call.request),
            on_attempt=self._count_attempt,
            on_retry=self._on_retry,
        )
        context = request_context()
        if context is not None:
            context.input_tokens = completion.input_tokens
            context.output_tokens = completion.output_tokens
            context.model_served = completion.model or None
        return completion

    async def stream(self, call: PreparedCall) -> AsyncGenerator[StreamItem, None]:
        """Deltas as they arrive; opening the stream up to its first item is retried, the rest is not."""
        started = time.perf_counter()

        async def open_stream() -> tuple[AsyncGenerator[StreamItem, None], StreamItem]:
            items = call.provider.stream(call.request)
            try:
                first = await anext(items)
            except BaseException:
                await items.aclose()
                raise
            return items, first

        items, first = await self._retry.call(
            open_stream, on_attempt=self._count_attempt, on_retry=self._on_retry
        )
        context = request_context()
        try:
            item: StreamItem = first
            while True:
                if isinstance(item, TextDeltas):
                    if context is not None and context.ttft_ms is None:
                        context.ttft_ms = (time.perf_counter() - started) * 1000
                    yield item
                elif isinstance(item, StreamSummary):
                    if context is not None:
                        context.input_tokens = item.input_tokens
                        context.output_tokens = item.output_tokens
                        context.model_served = item.model or None
                    yield item
                    return
                item = await anext(items)
        finally:
            await items.aclose()
