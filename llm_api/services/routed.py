"""What the service needs to run a request through the router (GATEWAY_CONFIG): the request as the
client sent it, prepared again for each target tried, and what the response and the logs say served it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry import trace

from llm_api.chat_model import EMPTY, Chat, ChatResult, EventBatch
from llm_api.routing.cache import CacheControl, CachedAnswer, ResponseCache, parse_cache_control
from llm_api.routing.chain import RouteChain
from llm_api.routing.config import Capabilities, ResolvedDeployment
from llm_api.services.calls import WireRequest
from llm_api.services.capabilities import CapabilityTable, ModelCapabilities
from llm_api.services.providers.base import Outcome
from llm_api.utils.context import request_context

# Wire parameter names an openai-compatible server is not sent unless its capabilities say so.
_TOOLS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})


@dataclass(slots=True)
class RoutedCall:
    """A request bound to a model or alias, not yet to a deployment: the service prepares it for each
    target it tries (relayed to a same-vendor target, translated for another).

    Exactly one of `chat` (a neutral request) and `wire` (a vendor-format request) is set."""

    requested: str
    stream: bool
    chat: Chat | None = None
    wire: WireRequest | None = None
    names: Mapping[str, str] = EMPTY
    defaulted: frozenset[str] = frozenset()
    # The wire body decoded once, when a target of another vendor (or the cache) needs it.
    decoded: Chat | None = field(default=None)
    cache_control: str | None = None
    # Set when the cache may store the answer: every target is then translated (never relayed), so the
    # answer is neutral and replays alike in either format, as JSON or as a stream.
    translate: bool = False

    relayed = False

    def headers(self) -> dict[str, str]:
        """Nothing before a target is chosen: the served target's headers go through the request
        context (`record_served`)."""
        return {}


def capabilities_for(deployment: ResolvedDeployment, model: str, table: CapabilityTable) -> ModelCapabilities:
    """The built-in table for vendor deployments; the file's conservative set for openai-compatible."""
    caps = deployment.spec.capabilities
    if deployment.provider != "openai-compatible":
        return table.lookup(model)
    if caps is None:
        caps = Capabilities()
    refuses: set[str] = set()
    if not caps.tools:
        refuses |= _TOOLS
    if not caps.response_format:
        refuses.add("response_format")
    if not caps.stream_usage:
        refuses.add("stream_options")
    return ModelCapabilities(
        temperature=caps.temperature,
        max_tokens_param=caps.max_tokens_param,
        structured_outputs=caps.response_format,
        reasoning=caps.reasoning,
        refuses=frozenset(refuses),
    )


def record_route(chain: RouteChain) -> None:
    """The chain tried, for the access log and the request's server span (names and outcomes only)."""
    records = chain.as_records()
    context = request_context()
    if context is not None:
        context.route = records
        context.fallbacks = chain.fallbacks
        context.attempts = chain.attempts
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(
            "llm_api.route",
            [f"{hop['model']}@{hop['deployment']}:{hop['outcome']}" for hop in records],
        )
        span.set_attribute("llm_api.fallbacks", chain.fallbacks)


def record_served(chain: RouteChain, extra_headers: Mapping[str, str]) -> None:
    """What served: the X-LLM-* response headers, the provider in the access log, the model priced."""
    served = chain.served
    context = request_context()
    if served is None or context is None:
        return
    context.provider = served.deployment.provider
    context.model_served = served.model
    context.target_model = served.model
    context.response_headers.update(
        {
            "X-LLM-Model": served.model,
            "X-LLM-Provider": served.deployment.provider,
            "X-LLM-Deployment": served.deployment.name,
            **extra_headers,
        }
    )


def say_miss() -> None:
    """X-LLM-Cache: miss, for a request the cache does not answer."""
    context = request_context()
    if context is not None:
        context.response_headers["X-LLM-Cache"] = "miss"


def allowed_control(cache_control: str | None) -> CacheControl | None:
    """What the request's Cache-Control lets the cache do; None (and `miss`) for neither read nor write."""
    control = parse_cache_control(cache_control)
    if control.read or control.write:
        return control
    say_miss()
    return None


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """One request's cache entry: `chat` is the canonical request (the model or alias as requested),
    scoped to `key_id` (unless CACHE_SCOPE=shared); `control` what its Cache-Control allows."""

    cache: ResponseCache
    chat: Chat
    key_id: str | None
    control: CacheControl

    @classmethod
    def of(cls, cache: ResponseCache, chat: Chat, requested: str, control: CacheControl) -> CacheLookup:
        """The entry of `chat` as a request for `requested`, scoped to the calling key."""
        context = request_context()
        canonical = dataclasses.replace(chat, model=requested)
        return cls(cache, canonical, key_id=context.key_id if context else None, control=control)

    async def get(self) -> CachedAnswer | None:
        """The stored answer (and the response headers saying so), or None: a miss."""
        hit = await self.cache.get(self.chat, key_id=self.key_id) if self.control.read else None
        context = request_context()
        if context is None:
            return hit
        context.response_headers["X-LLM-Cache"] = "hit" if hit is not None else "miss"
        if hit is not None:
            context.cache_hit = True
            context.provider = hit.provider
            context.model_served = hit.result.model or None
            served = {"X-LLM-Model": hit.result.model, "X-LLM-Provider": hit.provider or ""}
            if hit.deployment:
                served["X-LLM-Deployment"] = hit.deployment
            context.response_headers.update({k: v for k, v in served.items() if v})
        return hit

    @staticmethod
    def replayed(hit: CachedAnswer) -> tuple[EventBatch, Outcome]:
        """A stored answer as a stream's items (a streamed request that hit the cache)."""
        return EventBatch(tuple(hit.events())), Outcome(
            hit.result.id, hit.result.model, hit.result.stop_reason
        )

    async def put(self, result: ChatResult, chain: RouteChain) -> None:
        """Store a complete answer, if this request's Cache-Control allows it."""
        served = chain.served
        await self.store(
            result,
            provider=served.deployment.provider if served else None,
            deployment=served.deployment.name if served else None,
        )

    async def store(self, result: ChatResult, *, provider: str | None, deployment: str | None) -> None:
        """`put` with what served it named directly (the path without a router)."""
        if not self.control.write:
            return
        await self.cache.put(self.chat, result, key_id=self.key_id, provider=provider, deployment=deployment)
