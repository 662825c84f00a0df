"""The calls the chat service hands around: a vendor-format request as the client sent it, and a request
bound to one provider (its wire format, what was dropped or clamped to fit the model)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from llm_api.chat_model import EMPTY, Chat
from llm_api.routing.budget import RetryBudget
from llm_api.services.capabilities import ModelCapabilities
from llm_api.services.providers.base import Provider, ProviderRequest

if TYPE_CHECKING:
    from llm_api.services.routed import CacheLookup

MAX_NAMED_PARAMS = 32

# Parameters with no neutral equivalent whose value changes nothing: dropped without being named.
HARMLESS_UNMAPPED: dict[str, tuple[object, ...]] = {
    "n": (1,),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logprobs": (False,),
    "store": (False,),
}


def meaningful_unmapped(chat: Chat) -> dict[str, Any]:
    """The chat's parameters without a neutral equivalent whose value matters (`n: 2`, a seed...)."""
    return {
        key: value
        for key, value in chat.unmapped.items()
        if value is not None and value not in HARMLESS_UNMAPPED.get(key, ())
    }


def whole_chat(wire: WireRequest) -> Chat | None:
    """The request's neutral form when it holds all of the request; None when decoding fails or would lose
    a parameter that matters (`n: 2`, `logprobs`, a block the neutral model cannot hold). The response
    cache stores neutral answers, so only such a request may be cached instead of relayed as sent."""
    try:
        chat = wire.decode(wire.body)
    except Exception:  # the relay never decodes it: a failure here (even a decoder's bug) refuses nothing
        return None
    return None if meaningful_unmapped(chat) else chat


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
    # Without a router, with CACHE_ENABLED: this request's view of the response cache (direct_cache.py).
    cache: CacheLookup | None = None

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
