"""The rate-limit hit sent with the reservation (`SpendGuard.reserve(charge=...)`), on our own
redis-server: the hit counts exactly once, a refusal of either holds nothing, scripts Redis forgot are
loaded again, and an outage applies each limit's own outage policy."""

from __future__ import annotations

import uuid

import pytest
import redis

from llm_api.errors import RateLimited
from llm_api.security.key_charge import KeyCharge
from llm_api.security.ratelimit import RateLimiter
from llm_api.spend import KeyLimits, SpendGuard
from llm_api.spend.types import TokenWindow
from llm_api.utils.context import RequestContext
from tests.test_ratelimit import own_redis
from tests.test_spend import make_guard

MODEL = "flat-model"  # priced by tests.test_spend's PRICES
TOKENS = KeyLimits(tokens=(TokenWindow(1000, 60),))


def make(port: int, *, rate_limit: str, workers: int = 1) -> tuple[RateLimiter, SpendGuard]:
    return make_guard(port, prefix=f"t{uuid.uuid4().hex[:8]}", workers=workers, rate_limit=rate_limit)


async def reserve(guard: SpendGuard, limiter: RateLimiter, key: str = "k", tokens: int = 100) -> object:
    charge = KeyCharge(limiter, key)
    reservation = await guard.reserve(
        key_id=key, limits=TOKENS, model=MODEL, input_tokens=tokens // 2, max_output_tokens=tokens // 2,
        charge=charge,
    )  # fmt: skip
    assert not charge.pending
    return reservation


async def test_the_hit_counts_once_and_a_rate_limit_refusal_holds_nothing(context: RequestContext) -> None:
    with own_redis() as (port, _):
        limiter, guard = make(port, rate_limit="3/minute")
        try:
            for _ in range(3):
                await reserve(guard, limiter)
            assert context.response_headers["X-RateLimit-Remaining"] == "0"
            assert await limiter.requests_in_window("k") == 3
            with pytest.raises(RateLimited) as refused:
                await reserve(guard, limiter)
            assert "rate limit" in str(refused.value)
            snapshot = await guard.usage_snapshot("k", TOKENS)
            assert snapshot.minute_tokens == 300  # the three held; the refused one gave its 100 back
        finally:
            await limiter.aclose()


async def test_a_token_refusal_still_counts_the_hit(context: RequestContext) -> None:
    with own_redis() as (port, _):
        limiter, guard = make(port, rate_limit="100/minute")
        try:
            with pytest.raises(RateLimited) as refused:
                await reserve(guard, limiter, tokens=2000)  # more than the whole token window
            assert "token" in str(refused.value)
            assert await limiter.requests_in_window("k") == 1
        finally:
            await limiter.aclose()


async def test_scripts_redis_forgot_are_loaded_again(context: RequestContext) -> None:
    with own_redis() as (port, _):
        limiter, guard = make(port, rate_limit="100/minute")
        try:
            await reserve(guard, limiter)
            redis.Redis(port=port).script_flush()
            await reserve(guard, limiter)
            assert await limiter.requests_in_window("k") == 2
            assert (await guard.usage_snapshot("k", TOKENS)).minute_tokens == 200
        finally:
            await limiter.aclose()


async def test_an_outage_applies_the_rate_limits_worker_share(context: RequestContext) -> None:
    with own_redis() as (port, proc):
        # Per day, not per minute: the in-process fallback is `limits`' sliding-window counter, which
        # floors the previous window's weighted count, so hits straddling a window's end let one more
        # through (this failed in CI at hh:mm:00).
        limiter, guard = make(port, rate_limit="4/day", workers=2)
        try:
            await reserve(guard, limiter)  # counted in process too
            proc.terminate()
            proc.wait(timeout=5)
            # 4 / 2 workers = 2 here, one of them already used: one more, then 429 from the rate limit.
            await reserve(guard, limiter, key="k")
            with pytest.raises(RateLimited) as refused:
                await reserve(guard, limiter, key="k")
            assert "rate limit" in str(refused.value)
        finally:
            await limiter.aclose()
