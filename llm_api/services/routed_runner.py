"""A routed request (GATEWAY_CONFIG) along its plan: each target prepared on its own (relayed to a
same-vendor target, translated for another), tried through the router's executor with one attempt budget
shared by the retries and the fallbacks, the response cache around it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from llm_api.chat_model import Chat, ChatResult, EventBatch
from llm_api.routing.cache import ResponseCache, enabled_for
from llm_api.routing.chain import RouteChain
from llm_api.routing.executor import Target
from llm_api.routing.plan import Plan
from llm_api.routing.replay import ResultBuilder
from llm_api.routing.router import Router
from llm_api.services.calls import PreparedCall, whole_chat
from llm_api.services.capabilities import CapabilityTable
from llm_api.services.providers.base import RelayedResponse, StreamItem
from llm_api.services.providers.registry import ProviderRegistry
from llm_api.services.routed import (
    CacheLookup,
    RoutedCall,
    allowed_control,
    capabilities_for,
    record_route,
    record_served,
    say_miss,
)

if TYPE_CHECKING:
    from llm_api.services.llm import ChatService


class RoutedRunner:
    """Runs RoutedCalls for one service (its `complete`, `relay` and `stream`, telemetry included)."""

    def __init__(
        self,
        service: ChatService,
        router: Router,
        providers: ProviderRegistry,
        capabilities: CapabilityTable,
        *,
        cache: ResponseCache | None,
        cache_enabled: bool,
    ) -> None:
        self._service = service
        self._router = router
        self._providers = providers
        self._capabilities = capabilities
        self._cache = cache
        self._cache_enabled = cache_enabled

    async def answer(self, call: RoutedCall) -> ChatResult | RelayedResponse:
        """The first good answer along the plan; retries and fallbacks draw from one attempt budget; the
        request's own errors are answered at once."""
        router = self._router
        service = self._service

        async def attempt(target: Target) -> tuple[PreparedCall, ChatResult | RelayedResponse]:
            prepared = self._prepare_target(call, target)
            value = await (service.relay(prepared) if prepared.relayed else service.complete(prepared))
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

    async def stream(self, call: RoutedCall) -> AsyncGenerator[StreamItem, None]:
        """The stream along the plan: a target that fails before its first delta passes the request on;
        after it, a failure ends the stream (and still counts against the deployment)."""
        router = self._router

        async def attempt(
            target: Target,
        ) -> tuple[PreparedCall, AsyncGenerator[StreamItem, None], StreamItem | None]:
            prepared = self._prepare_target(call, target)
            items = self._service.stream(prepared)
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
                for replayed in CacheLookup.replayed(hit):
                    yield replayed
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
        control = allowed_control(call.cache_control)
        if control is None:
            return None
        if call.wire is not None:
            # Not cached unless its neutral form holds all of it: a same-vendor target then relays it as
            # sent, and one of another vendor refuses it when tried if it cannot be decoded.
            call.decoded = whole_chat(call.wire)
            if call.decoded is None:
                say_miss()
                return None
        call.translate = True
        return CacheLookup.of(self._cache, self._neutral(call), call.requested, control)

    @staticmethod
    def _neutral(call: RoutedCall) -> Chat:
        if call.chat is not None:
            return call.chat
        if call.decoded is None:
            assert call.wire is not None, "a RoutedCall holds a chat or a wire request"
            call.decoded = call.wire.decode(call.wire.body)
        return call.decoded

    def _prepare_target(self, call: RoutedCall, target: Target) -> PreparedCall:
        """The request fitted to one target: relayed when the deployment speaks the client's format,
        else translated (the wire body decoded once)."""
        provider = self._providers.for_deployment(target.deployment.name)
        caps = capabilities_for(target.deployment, target.model, self._capabilities)
        wire = call.wire
        if wire is not None and not call.translate and provider.wire_format == wire.wire_format:
            routed = dataclasses.replace(wire, body={**wire.body, "model": target.model})
            prepared = self._service.fit_wire(routed, target.model, provider, caps)
        else:
            chat = dataclasses.replace(self._neutral(call), model=target.model)
            prepared = self._service.fit_chat(
                chat, target.model, provider, caps, names=call.names, defaulted=call.defaulted
            )
        return dataclasses.replace(prepared, deployment=target.deployment.name, budget=target.budget)
