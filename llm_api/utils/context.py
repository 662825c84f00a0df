"""Per-request facts gathered along the way, read by the access log and error bodies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(slots=True)
class RequestContext:
    request_id: str
    started: float
    key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    stream: bool = False
    attempts: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: float | None = None
    error_type: str | None = None
    dropped_params: list[str] = field(default_factory=list)
    # The error format of the endpoint called: "gateway" (/v1/chat and the rest), "openai", "anthropic".
    wire_format: str = "gateway"
    # Spend (llm_api.spend, for the ledger): cache tokens, the cost (None: unknown price), how it was known.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: Decimal | None = None
    usage_estimated: bool = False
    price_version: str | None = None
    # Headers every response to this request carries (the X-RateLimit-* of the caller's limit).
    response_headers: dict[str, str] = field(default_factory=dict)
    # Router (GATEWAY_CONFIG): the model that served (what the ledger prices), the chain tried
    # (RouteChain.as_records(): names, outcomes, error types) and how many fallbacks it took.
    model_served: str | None = None  # the model the provider says answered
    target_model: str | None = None  # the gateway file's target that served: its price is billed
    route: list[dict[str, object]] | None = None
    fallbacks: int = 0
    cache_hit: bool = False  # answered from the response cache: no upstream call, no tokens
    # A reservation not yet settled or released: the middleware closes it when the request ends without
    # (a stream torn down before its generator ever ran).
    unsettled: Callable[[], Awaitable[None]] | None = None
    # For the usage ledger (store): set by the middleware (endpoint).
    endpoint: str | None = None  # the API endpoint; None: this request gets no ledger row


current_request: ContextVar[RequestContext | None] = ContextVar("current_request", default=None)


def request_context() -> RequestContext | None:
    return current_request.get()
