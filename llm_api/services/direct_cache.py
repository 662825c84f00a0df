"""The response cache without a gateway file (CACHE_ENABLED=true, REDIS_URL, no GATEWAY_CONFIG): the same
cache as the router's (`llm_api.routing.cache`), around the one provider a model goes to.

As on the routed path, a request the cache may store is translated rather than relayed, so the stored
answer is the neutral one and replays alike on every endpoint, as JSON or as a real stream; Cache-Control
`no-store` leaves the request as it was (relayed to its own vendor), `no-cache` skips the lookup and
stores the fresh answer. The answer is stored only once it is complete: never an error, nor a stream that
failed or was cancelled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable

from llm_api.chat_model import Chat, ChatResult, EventBatch
from llm_api.errors import UnsupportedParameter
from llm_api.routing.cache import ResponseCache
from llm_api.routing.replay import ResultBuilder
from llm_api.services.calls import PreparedCall, WireRequest, whole_chat
from llm_api.services.providers.base import RelayedResponse, StreamItem
from llm_api.services.routed import CacheLookup, allowed_control, say_miss


def translated_for_cache(
    lookup: CacheLookup, fit: Callable[[Chat], PreparedCall], *, relayable: bool
) -> PreparedCall | None:
    """The translated call (`fit` of the canonical chat) that the cache may answer or store; None, the
    request then relayed uncached, when translating it for its own vendor would drop or refuse a
    parameter the relay keeps."""
    try:
        prepared: PreparedCall | None = fit(lookup.chat)
    except UnsupportedParameter:
        if not relayable:
            raise
        prepared = None
    if prepared is None or (relayable and prepared.dropped_params):
        say_miss()
        return None
    return dataclasses.replace(prepared, cache=lookup)


def wire_cache_lookup(
    cache: ResponseCache, wire: WireRequest, model: str, cache_control: str | None, *, relayable: bool
) -> CacheLookup | None:
    """`cache_lookup` for a vendor-format request, decoded to its neutral form even for its own vendor
    (the cached answer is the neutral one). A request for its own vendor that the neutral form would
    change (`n: 2`, `logprobs`, a block it cannot hold) is relayed as before, uncached."""
    control = allowed_control(cache_control)
    if control is None:
        return None
    chat = whole_chat(wire) if relayable else wire.decode(wire.body)
    if chat is None:
        say_miss()
        return None
    return CacheLookup.of(cache, chat, model, control)


def cache_lookup(
    cache: ResponseCache, chat: Chat, model: str, cache_control: str | None
) -> CacheLookup | None:
    """The cache's view of a request for `model` (its canonical request, scoped to the calling key), or
    None when Cache-Control says neither to read nor to write (the response then says `miss`)."""
    control = allowed_control(cache_control)
    return CacheLookup.of(cache, chat, model, control) if control is not None else None


async def cached_answer(
    lookup: CacheLookup, produce: Callable[[], Awaitable[ChatResult | RelayedResponse]], *, provider: str
) -> ChatResult | RelayedResponse:
    """The stored answer, else the provider's (stored when complete and neutral)."""
    hit = await lookup.get()
    if hit is not None:
        return hit.result
    value = await produce()
    if isinstance(value, ChatResult):
        await lookup.store(value, provider=provider, deployment=None)
    return value


async def cached_stream(
    lookup: CacheLookup, items: AsyncGenerator[StreamItem, None], *, provider: str
) -> AsyncGenerator[StreamItem, None]:
    """The stored answer replayed as a stream, else the provider's stream (stored once it ended)."""
    hit = await lookup.get()
    if hit is not None:
        await items.aclose()  # never started: nothing was sent upstream
        for replayed in CacheLookup.replayed(hit):
            yield replayed
        return
    builder = ResultBuilder()
    try:
        async for item in items:
            if isinstance(item, EventBatch):
                for event in item.events:
                    builder.add(event)
            yield item
    finally:
        await items.aclose()
    result = builder.result()
    if result is not None:  # only a stream that ended properly
        await lookup.store(result, provider=provider, deployment=None)
