"""The provider-agnostic chat service: routing, fitting a request to the model, retries, usage.

Two ways in, one call shape out:
- `prepare(chat)`: a neutral `Chat` (from `/v1/chat`, or any wire format whose vendor does not serve the
  model) is fitted to the model's capabilities and encoded into the provider's format;
- `prepare_wire(wire)`: a request in a vendor's own format; when that vendor serves the model, the body is
  relayed (only what the model refuses is removed, max tokens clamped), otherwise it is decoded and
  translated as above.
Then `complete` (neutral answer), `relay` (same-vendor bytes) or `stream` (either), all retried on
transient upstream errors, with the retries, the request context and (InstrumentedChatService) the
telemetry applying alike on every path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from llm_api.chat_model import EMPTY, BlockStart, BlockStop, Chat, ChatResult, EventBatch, MessageStart
from llm_api.codecs.anthropic_messages import estimate_input_tokens
from llm_api.errors import UnsupportedParameter
from llm_api.routing.cache import ResponseCache
from llm_api.routing.router import Router
from llm_api.services.calls import PreparedCall, WireRequest, meaningful_unmapped
from llm_api.services.capabilities import CapabilityTable, ModelCapabilities
from llm_api.services.direct_cache import (
    cache_lookup,
    cached_answer,
    cached_stream,
    translated_for_cache,
    wire_cache_lookup,
)
from llm_api.services.providers.base import (
    Outcome,
    Provider,
    ProviderRequest,
    RawFrames,
    RelayedResponse,
    StreamItem,
)
from llm_api.services.providers.registry import ProviderRegistry
from llm_api.services.retry import RetryObserver, RetryPolicy
from llm_api.services.routed import RoutedCall
from llm_api.services.routed_runner import RoutedRunner
from llm_api.utils.context import request_context

__all__ = ["ChatService", "PreparedCall", "TokenCount", "WireRequest"]


@dataclass(frozen=True, slots=True)
class TokenCount:
    input_tokens: int
    estimated: bool


def _is_content(item: StreamItem) -> bool:
    """Past the stream's opening (the first delta): from here on a failure is not retried."""
    if isinstance(item, EventBatch):
        return any(not isinstance(event, MessageStart | BlockStart | BlockStop) for event in item.events)
    if isinstance(item, RawFrames):
        return item.content
    return True


class ChatService:
    """Complete, relay or stream a chat on whichever provider serves the model."""

    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        capabilities: CapabilityTable,
        retry_policy: RetryPolicy,
        default_model: str,
        drop_unsupported_params: bool,
        on_retry: RetryObserver | None = None,
        router: Router | None = None,
        cache: ResponseCache | None = None,
        cache_enabled: bool = False,
    ) -> None:
        self._router = router
        self._routed = (
            RoutedRunner(self, router, providers, capabilities, cache=cache, cache_enabled=cache_enabled)
            if router is not None
            else None
        )
        # Without a router, CACHE_ENABLED caches around the one provider a model goes to (direct_cache.py).
        self._direct_cache = cache if router is None and cache_enabled else None
        self._providers = providers
        self._capabilities = capabilities
        self._retry = retry_policy
        self._default_model = default_model
        self._drop_unsupported = drop_unsupported_params
        self._on_retry = on_retry

    def _route(self, model: str, *, stream: bool) -> tuple[Provider, ModelCapabilities]:
        context = request_context()
        if context is not None:
            context.model = model
            context.stream = stream
        provider = self._providers.for_model(model)
        if context is not None:
            context.provider = provider.name
        return provider, self._capabilities.lookup(model)

    def _refuse_or_report(self, model: str, dropped: list[str]) -> None:
        if dropped and not self._drop_unsupported:
            raise UnsupportedParameter(
                f"parameter '{dropped[0]}' is not supported by model '{model}'", param=dropped[0]
            )
        context = request_context()
        if context is not None:
            context.dropped_params = dropped

    def prepare(
        self,
        chat: Chat,
        *,
        names: Mapping[str, str] = EMPTY,
        defaulted: frozenset[str] = frozenset(),
        cache_control: str | None = None,
    ) -> PreparedCall | RoutedCall:
        """Route a neutral chat, fit it to what the model accepts, and encode it for the provider.

        `defaulted` names parameters the client did not set (the format's defaults): dropped silently.
        With a router the call is bound to a deployment later, per target tried (`RoutedCall`).
        """
        model = chat.model or self._default_model
        if self._router is not None:
            self._note_request(model, stream=chat.stream)
            return RoutedCall(
                model,
                chat.stream,
                chat=chat,
                names=names,
                defaulted=defaulted,
                cache_control=cache_control,
            )
        provider, caps = self._route(model, stream=chat.stream)
        prepared = self.fit_chat(chat, model, provider, caps, names=names, defaulted=defaulted)
        if self._direct_cache is not None:
            lookup = cache_lookup(self._direct_cache, chat, model, cache_control)
            if lookup is not None:
                return dataclasses.replace(prepared, cache=lookup)
        return prepared

    def fit_chat(
        self,
        chat: Chat,
        model: str,
        provider: Provider,
        caps: ModelCapabilities,
        *,
        names: Mapping[str, str] = EMPTY,
        defaulted: frozenset[str] = frozenset(),
    ) -> PreparedCall:
        dropped: list[str] = []
        clamped: list[str] = []
        changes: dict[str, Any] = {} if model == chat.model else {"model": model}

        def drop(name: str, **change: Any) -> None:
            changes.update(change)
            if name not in defaulted:
                dropped.extend(names.get(name, name).split(","))

        if chat.temperature is not None and not caps.takes("temperature"):
            drop("temperature", temperature=None)
        if chat.top_p is not None and not caps.takes("top_p"):
            drop("top_p", top_p=None)
        if chat.reasoning is not None and not caps.reasoning:
            drop("reasoning", reasoning=None)
        limit = caps.max_output_tokens
        if chat.max_tokens is not None and limit is not None and chat.max_tokens > limit:
            changes["max_tokens"] = limit
            clamped.append(names.get("max_tokens", "max_tokens"))
        if chat.unmapped:
            unmapped = meaningful_unmapped(chat)
            if len(unmapped) != len(chat.unmapped):
                changes["unmapped"] = unmapped
        fitted = dataclasses.replace(chat, **changes) if changes else chat
        encoded = provider.encode(fitted, caps)
        dropped.extend(name for name in encoded.dropped if name not in dropped)
        clamped.extend(name for name in encoded.clamped if name not in clamped)
        self._refuse_or_report(model, dropped)
        request = ProviderRequest(
            model=model,
            body=encoded.body,
            stream=fitted.stream,
            unwrap_json_tool=encoded.unwrap_json_tool,
            max_tokens=fitted.max_tokens,
            temperature=fitted.temperature,
        )
        return PreparedCall(provider, request, tuple(dropped), tuple(clamped), caps)

    def prepare_wire(
        self, wire: WireRequest, *, cache_control: str | None = None
    ) -> PreparedCall | RoutedCall:
        """Relay a vendor-format request to that vendor's model; translate it for any other."""
        model = wire.model or self._default_model
        if self._router is not None:
            self._note_request(model, stream=wire.stream)
            return RoutedCall(model, wire.stream, wire=wire, names=wire.names, cache_control=cache_control)
        provider, caps = self._route(model, stream=wire.stream)
        relayable = provider.wire_format == wire.wire_format
        lookup = None
        if self._direct_cache is not None:
            lookup = wire_cache_lookup(self._direct_cache, wire, model, cache_control, relayable=relayable)
        if lookup is not None:
            cached = translated_for_cache(
                lookup,
                lambda chat: self.fit_chat(chat, model, provider, caps, names=wire.names),
                relayable=relayable,
            )
            if cached is not None:
                return cached
        if not relayable:
            chat = wire.decode(wire.body)
            return self.fit_chat(chat, chat.model or model, provider, caps, names=wire.names)
        return self.fit_wire(wire, model, provider, caps)

    def fit_wire(
        self, wire: WireRequest, model: str, provider: Provider, caps: ModelCapabilities
    ) -> PreparedCall:
        fitted = provider.fit({**wire.body, "model": model}, caps)
        dropped = list(fitted.dropped)
        self._refuse_or_report(model, dropped)
        body = fitted.body
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        temperature = body.get("temperature")
        request = ProviderRequest(
            model=model,
            body=body,
            stream=wire.stream,
            relay=True,
            include_usage=wire.include_usage,
            headers=wire.headers,
            query=wire.query,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            temperature=float(temperature) if isinstance(temperature, int | float) else None,
        )
        return PreparedCall(provider, request, tuple(dropped), fitted.clamped, caps)

    def _count_attempt(self, attempt: int) -> None:
        context = request_context()
        if context is not None:
            context.attempts = attempt

    @staticmethod
    def _record_usage(outcome: ChatResult | RelayedResponse | Outcome) -> None:
        context = request_context()
        if context is not None:
            context.input_tokens = outcome.usage.prompt_tokens
            context.output_tokens = outcome.usage.output_tokens

    async def complete(self, call: PreparedCall) -> ChatResult:
        """One neutral answer, retried on transient upstream errors."""
        result = await self._retry.call(
            lambda: call.provider.complete(call.request),
            on_attempt=self._count_attempt,
            on_retry=self._on_retry,
            budget=call.budget,
        )
        self._record_usage(result)
        return result

    async def relay(self, call: PreparedCall) -> RelayedResponse:
        """One same-vendor answer (its bytes untouched), retried on transient upstream errors."""
        relayed = await self._retry.call(
            lambda: call.provider.relay(call.request),
            on_attempt=self._count_attempt,
            on_retry=self._on_retry,
            budget=call.budget,
        )
        self._record_usage(relayed)
        return relayed

    async def stream(self, call: PreparedCall) -> AsyncGenerator[StreamItem, None]:
        """Items as they arrive (EventBatch when translated, RawFrames when relayed), then one Outcome.

        Opening the stream is retried up to its first content (a failure right after message_start
        included); after that nothing is.
        """
        started = time.perf_counter()

        def open_upstream() -> AsyncGenerator[Any, None]:
            if call.request.relay:
                return call.provider.relay_stream(call.request)
            return call.provider.stream(call.request)

        async def open_stream() -> tuple[AsyncGenerator[StreamItem, None], list[StreamItem]]:
            items: AsyncGenerator[StreamItem, None] = open_upstream()
            opening: list[StreamItem] = []
            try:
                while not opening or not _is_content(opening[-1]):
                    opening.append(await anext(items))
            except BaseException:
                await items.aclose()
                raise
            return items, opening

        items, opening = await self._retry.call(
            open_stream, on_attempt=self._count_attempt, on_retry=self._on_retry, budget=call.budget
        )
        context = request_context()
        if context is not None and context.ttft_ms is None:
            context.ttft_ms = (time.perf_counter() - started) * 1000
        try:
            for item in opening:
                yield item
                if isinstance(item, Outcome):
                    self._record_usage(item)
                    return
            async for item in items:
                yield item
                if isinstance(item, Outcome):
                    self._record_usage(item)
                    return
        finally:
            await items.aclose()

    async def answer(self, call: PreparedCall | RoutedCall) -> ChatResult | RelayedResponse:
        """The whole answer: relayed bytes (a same-vendor call) or a neutral result (translated). A routed
        call goes through its plan's targets (`RoutedRunner.answer`)."""
        if isinstance(call, PreparedCall):
            if call.cache is not None:
                return await cached_answer(
                    call.cache, lambda: self.complete(call), provider=call.provider.name
                )
            return await (self.relay(call) if call.relayed else self.complete(call))
        return await self._runner().answer(call)

    def served_by(self, call: PreparedCall | RoutedCall) -> tuple[str, ...]:
        """The models that may serve `call`, whose prices its reservation must cover: a routed alias's
        targets (a fallback may be dearer than the first), else the model itself."""
        if isinstance(call, RoutedCall):
            assert self._router is not None, "a RoutedCall comes only from a service with a router"
            return self._router.target_models(call.requested)
        return (call.request.model,)

    def stream_answer(self, call: PreparedCall | RoutedCall) -> AsyncGenerator[StreamItem, None]:
        """`stream`, or for a routed call `RoutedRunner.stream` along its plan (no wrapper generator:
        nothing added per chunk)."""
        if isinstance(call, PreparedCall):
            if call.cache is not None:
                return cached_stream(call.cache, self.stream(call), provider=call.provider.name)
            return self.stream(call)
        return self._runner().stream(call)

    def _runner(self) -> RoutedRunner:
        assert self._routed is not None, "a RoutedCall comes only from a service with a router"
        return self._routed

    def _note_request(self, model: str, *, stream: bool) -> None:
        context = request_context()
        if context is not None:
            context.model = model
            context.stream = stream

    async def count_tokens(self, wire: WireRequest) -> TokenCount:
        """The upstream's count when the model's vendor has one (relayed as sent), else a local estimate."""
        model = wire.model or self._default_model
        if self._router is not None:
            # No fallback for a count: the plan's first deployment answers it, or the estimate does.
            self._note_request(model, stream=False)
            target = (await self._router.plan(model)).targets[0]
            model = target.model
            provider = self._providers.for_deployment(target.deployments[0].name)
        else:
            provider, _ = self._route(model, stream=False)
        if provider.wire_format == wire.wire_format:
            request = ProviderRequest(
                model=model,
                body={**wire.body, "model": model},
                relay=True,
                headers=wire.headers,
                query=wire.query,
            )
            counted = await self._retry.call(
                lambda: provider.count_tokens(request),
                on_attempt=self._count_attempt,
                on_retry=self._on_retry,
            )
            if counted is not None:
                return TokenCount(counted, estimated=False)
        return TokenCount(estimate_input_tokens(wire.decode(wire.body)), estimated=True)
