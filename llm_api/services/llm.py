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
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from llm_api.chat_model import EMPTY, BlockStart, BlockStop, Chat, ChatResult, EventBatch, MessageStart
from llm_api.codecs.anthropic_messages import estimate_input_tokens
from llm_api.errors import UnsupportedParameter
from llm_api.routing.budget import RetryBudget
from llm_api.routing.cache import ResponseCache, enabled_for, parse_cache_control
from llm_api.routing.chain import RouteChain
from llm_api.routing.executor import Target
from llm_api.routing.plan import Plan
from llm_api.routing.replay import ResultBuilder
from llm_api.routing.router import Router
from llm_api.services.capabilities import CapabilityTable, ModelCapabilities
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
from llm_api.services.routed import (
    CacheLookup,
    RoutedCall,
    capabilities_for,
    record_route,
    record_served,
)
from llm_api.utils.context import request_context

MAX_NAMED_PARAMS = 32
# Parameters with no neutral equivalent whose value changes nothing: dropped without being named.
_HARMLESS: dict[str, tuple[object, ...]] = {
    "n": (1,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logprobs": (False,),
    "store": (False,),
}


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request as the client sent it in a vendor's format, already validated.

    `decode` turns the body into a neutral `Chat` (only called when the request must be translated);
    `headers`/`query` are forwarded when the request is relayed; `names` maps neutral parameters to the
    names the client used (comma-separated when several), for X-LLM-Dropped-Params and
    X-LLM-Clamped-Params.
    """

    wire_format: str
    body: Mapping[str, Any]
    decode: Callable[[Mapping[str, Any]], Chat]
    include_usage: bool = False
    headers: Mapping[str, str] = EMPTY
    query: Mapping[str, str] = EMPTY
    names: Mapping[str, str] = EMPTY

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A request bound to its provider, in its wire format, with what was dropped or clamped to fit it."""

    provider: Provider
    request: ProviderRequest
    dropped_params: tuple[str, ...] = ()
    clamped_params: tuple[str, ...] = ()
    capabilities: ModelCapabilities = field(default_factory=ModelCapabilities)
    # Routed calls: the deployment's name (telemetry) and the request's attempt budget (retries).
    deployment: str | None = None
    budget: RetryBudget | None = None

    @property
    def relayed(self) -> bool:
        return self.request.relay

    def headers(self) -> dict[str, str]:
        """The response headers that say what the gateway changed."""
        headers = {}
        if self.dropped_params:
            headers["X-LLM-Dropped-Params"] = _header_list(self.dropped_params)
        if self.clamped_params:
            headers["X-LLM-Clamped-Params"] = _header_list(self.clamped_params)
        return headers


def _header_list(names: tuple[str, ...]) -> str:
    """Parameter names as a header value: a client's unknown field may be named anything, so names are
    percent-encoded (ASCII only) and the list is bounded."""
    shown = [quote(name[:64], safe="._-[]") for name in names[:MAX_NAMED_PARAMS]]
    if len(names) > MAX_NAMED_PARAMS:
        shown.append("...")
    return ",".join(shown)


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
        self._cache = cache
        self._cache_enabled = cache_enabled
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
        return self._fit_chat(chat, model, provider, caps, names=names, defaulted=defaulted)

    def _fit_chat(
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
            unmapped = {
                key: value
                for key, value in chat.unmapped.items()
                if value is not None and value not in _HARMLESS.get(key, ())
            }
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
        if provider.wire_format != wire.wire_format:
            chat = wire.decode(wire.body)
            return self._fit_chat(chat, chat.model or model, provider, caps, names=wire.names)
        return self._fit_wire(wire, model, provider, caps)

    def _fit_wire(
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
        call goes through its plan's targets, retries and fallbacks drawing from one attempt budget."""
        if isinstance(call, PreparedCall):
            return await (self.relay(call) if call.relayed else self.complete(call))
        router = self._routing()

        async def attempt(target: Target) -> tuple[PreparedCall, ChatResult | RelayedResponse]:
            prepared = self._prepare_target(call, target)
            value = await (self.relay(prepared) if prepared.relayed else self.complete(prepared))
            return prepared, value

        plan = await router.plan(call.requested)
        lookup = self._cache_lookup(call, plan)
        if lookup is not None:
            hit = await lookup.get()
            if hit is not None:
                return hit.result
        chain = RouteChain()
        try:
            served, value = await router.execute(plan, attempt, chain=chain)
        finally:
            record_route(chain)
        record_served(chain, served.headers())
        if lookup is not None and isinstance(value, ChatResult):
            await lookup.put(value, chain)
        return value

    async def stream_answer(self, call: PreparedCall | RoutedCall) -> AsyncGenerator[StreamItem, None]:
        """`stream`, for a routed call along its plan: a target that fails before its first delta passes
        the request on; after it, a failure ends the stream (and still counts against the deployment)."""
        if isinstance(call, PreparedCall):
            async for item in self.stream(call):
                yield item
            return
        router = self._routing()

        async def attempt(
            target: Target,
        ) -> tuple[PreparedCall, AsyncGenerator[StreamItem, None], StreamItem | None]:
            prepared = self._prepare_target(call, target)
            items = self.stream(prepared)
            try:
                # `stream` yields nothing before its opening (up to the first delta) succeeded.
                first = await anext(items, None)
            except BaseException:
                await items.aclose()
                raise
            return prepared, items, first

        plan = await router.plan(call.requested)
        lookup = self._cache_lookup(call, plan)
        if lookup is not None:
            hit = await lookup.get()
            if hit is not None:
                yield EventBatch(tuple(hit.events()))
                yield Outcome(hit.result.id, hit.result.model, hit.result.stop_reason)
                return
        chain = RouteChain()
        try:
            served, items, first = await router.execute(plan, attempt, chain=chain, hold=True)
        finally:
            record_route(chain)
        record_served(chain, served.headers())
        builder = ResultBuilder() if lookup is not None else None

        def collect(item: StreamItem) -> StreamItem:
            if builder is not None and isinstance(item, EventBatch):
                for event in item.events:
                    builder.add(event)
            return item

        error: BaseException | None = None
        try:
            if first is not None:
                yield collect(first)
                async for item in items:
                    yield collect(item)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await items.aclose()
            await chain.finish(error)
            record_route(chain)
        result = builder.result() if builder is not None else None
        if lookup is not None and result is not None:  # only a stream that ended properly
            await lookup.put(result, chain)

    def _cache_lookup(self, call: RoutedCall, plan: Plan) -> CacheLookup | None:
        """The cache's view of this request, when the cache applies to it (CACHE_ENABLED or the alias's
        `cache:`), else None. Cached requests are translated for every target (`RoutedCall.translate`)."""
        if self._cache is None or not enabled_for(cache_enabled=self._cache_enabled, alias_cache=plan.cache):
            return None
        control = parse_cache_control(call.cache_control)
        context = request_context()
        if not control.read and not control.write:
            if context is not None:
                context.response_headers["X-LLM-Cache"] = "miss"
            return None
        call.translate = True
        chat = dataclasses.replace(self._neutral(call), model=call.requested)
        return CacheLookup(self._cache, chat, key_id=context.key_id if context else None, control=control)

    @staticmethod
    def _neutral(call: RoutedCall) -> Chat:
        if call.chat is not None:
            return call.chat
        if call.decoded is None:
            wire = call.wire
            assert isinstance(wire, WireRequest)
            call.decoded = wire.decode(wire.body)
        return call.decoded

    def _routing(self) -> Router:
        assert self._router is not None, "a RoutedCall comes only from a service with a router"
        return self._router

    def _note_request(self, model: str, *, stream: bool) -> None:
        context = request_context()
        if context is not None:
            context.model = model
            context.stream = stream

    def _prepare_target(self, call: RoutedCall, target: Target) -> PreparedCall:
        """The request fitted to one target: relayed when the deployment speaks the client's format,
        else translated (the wire body decoded once)."""
        provider = self._providers.for_deployment(target.deployment.name)
        caps = capabilities_for(target.deployment, target.model, self._capabilities)
        wire = call.wire
        relay = not call.translate and isinstance(wire, WireRequest)
        if relay and isinstance(wire, WireRequest) and provider.wire_format == wire.wire_format:
            routed = dataclasses.replace(wire, body={**wire.body, "model": target.model})
            prepared = self._fit_wire(routed, target.model, provider, caps)
        else:
            chat = dataclasses.replace(self._neutral(call), model=target.model)
            prepared = self._fit_chat(
                chat, target.model, provider, caps, names=call.names, defaulted=call.defaulted
            )
        return dataclasses.replace(prepared, deployment=target.deployment.name, budget=target.budget)

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
