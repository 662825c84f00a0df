"""OpenAI's token rate-limit headers, and the refusals that carry them."""

from __future__ import annotations

import math

from llm_api.errors import RateLimited
from llm_api.spend.types import ReserveResult, ReserveStatus


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
