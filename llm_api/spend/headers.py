"""OpenAI's token rate-limit headers, and the refusals that carry them."""

from __future__ import annotations

import math

from llm_api.errors import BudgetExceeded, RateLimited
from llm_api.spend.types import KeyLimits, ReserveResult, ReserveStatus
from llm_api.utils.context import request_context


def duration(ms: int) -> str:
    """OpenAI's reset notation: ``20ms``, ``12s``, ``6m0s``, ``1h2m0s``."""
    if ms < 1000:
        return f"{max(0, ms)}ms"
    total = math.ceil(ms / 1000)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def token_headers(result: ReserveResult) -> dict[str, str]:
    """x-ratelimit-*-tokens for the tightest token window (none when no token limit applies)."""
    if result.limit < 0:
        return {}
    return {
        "x-ratelimit-limit-tokens": str(result.limit),
        "x-ratelimit-remaining-tokens": str(max(0, result.remaining)),
        "x-ratelimit-reset-tokens": duration(result.reset_ms),
    }


def token_refusal(result: ReserveResult, *, requested: int) -> RateLimited:
    headers = {**token_headers(result), "Retry-After": str(max(1, math.ceil(result.reset_ms / 1000)))}
    if result.status is ReserveStatus.TOO_LARGE:
        return RateLimited(
            f"request too large for the token limit: its worst case is {requested} tokens (input estimate "
            f"plus max_tokens), the limit is {result.limit}; lower max_tokens or shorten the input",
            headers=headers,
        )
    return RateLimited(
        f"token rate limit exceeded: {result.limit} tokens per window, this request may use {requested}",
        headers=headers,
    )


def answer_reservation(result: ReserveResult, *, tokens: int, limits: KeyLimits) -> None:
    """The token headers into the request context; BudgetExceeded (402) or the token refusal (429, also
    for a request larger than the limit itself) unless the `tokens` were reserved."""
    context = request_context()
    if context is not None:
        context.response_headers.update(token_headers(result))
    if result.status is ReserveStatus.OVER_BUDGET:
        raise BudgetExceeded(
            f"budget exceeded: this key may spend {limits.budget_usd} USD per {limits.budget_period}, "
            "and this request's worst case does not fit in what is left"
        )
    if result.status in (ReserveStatus.OVER_TOKENS, ReserveStatus.TOO_LARGE):
        raise token_refusal(result, requested=tokens)
