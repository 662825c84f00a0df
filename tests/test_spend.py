"""The reservation engine on real Redis (our own redis-server): reserve, settle, release, expiry, a flush
rebuilt from the ledger, outages, and exactness across real parallel processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from llm_api.errors import (
    BudgetExceeded,
    BudgetUnavailable,
    ModelPriceUnknown,
    RateLimitBackendUnavailable,
    RateLimited,
)
from llm_api.security.limit_rules import parse_limit
from llm_api.security.ratelimit import RateLimiter
from llm_api.spend import KeyLimits, PriceTable, SpendGuard
from llm_api.spend.periods import period_window
from llm_api.spend.types import TokenWindow
from llm_api.utils.context import RequestContext
from tests.support import free_port
from tests.test_ratelimit import own_redis

# $1 per MTok in and out: a token costs a micro-dollar, so budgets read as token counts.
PRICES = '{"flat-*": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}'
MODEL = "flat-model"


def make_guard(
    port: int, *, prefix: str, workers: int = 1, rate_limit: str = "100000/minute", **kwargs: Any
) -> tuple[RateLimiter, SpendGuard]:
    limiter = RateLimiter(
        default=parse_limit(rate_limit, setting="RATE_LIMIT"),
        auth_failure=(),
        redis_uri=f"async+redis://127.0.0.1:{port}",
        key_prefix=prefix,
        redis_timeout_s=0.5,
        probe_interval_s=0.05,
        workers=workers,
    )
    guard = SpendGuard(
        prices=PriceTable(PRICES),
        default_limits=KeyLimits(),
        client=limiter.redis_client,
        link=limiter.link,
        key_prefix=prefix,
        workers=workers,
        limiter=limiter,
        **kwargs,
    )
    return limiter, guard


@pytest.fixture
def redis_port() -> Iterator[int]:
    with own_redis() as (port, _):
        yield port


@pytest.fixture
async def guard(redis_port: int) -> AsyncIterator[SpendGuard]:
    limiter, guard = make_guard(redis_port, prefix=f"t{uuid.uuid4().hex[:8]}")
    yield guard
    await guard.aclose()
    await limiter.aclose()


async def test_reserve_settle_release_and_the_token_headers(
    guard: SpendGuard, context: RequestContext
) -> None:
    limits = KeyLimits(tokens=(TokenWindow(1000, 60),))
    first = await guard.reserve(
        key_id="k1", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=300
    )
    assert context.response_headers["x-ratelimit-limit-tokens"] == "1000"
    assert context.response_headers["x-ratelimit-remaining-tokens"] == "600"
    assert context.response_headers["x-ratelimit-reset-tokens"].endswith("s")
    second = await guard.reserve(
        key_id="k1", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=300
    )
    assert context.response_headers["x-ratelimit-remaining-tokens"] == "200"
    with pytest.raises(RateLimited) as refused:
        await guard.reserve(key_id="k1", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=300)
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "200"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    # The actual usage replaces the worst case; a release gives everything back.
    cost = await guard.settle(first, input_tokens=90, output_tokens=10)
    assert cost == Decimal("0.0001")
    assert context.cost_usd == Decimal("0.0001") and context.price_version == guard.prices.version
    await guard.release(second)
    snapshot = await guard.usage_snapshot("k1", limits)
    assert snapshot.minute_tokens == 100
    await guard.reserve(key_id="k1", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=800)
    with pytest.raises(RateLimited, match="too large"):
        await guard.reserve(key_id="k1", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=1000)


async def test_budget_is_reserved_and_refused_with_402(guard: SpendGuard, context: RequestContext) -> None:
    limits = KeyLimits.of(budget_usd="0.001", budget_period="day")  # 1,000 tokens at $1/MTok
    held = [
        await guard.reserve(key_id="k2", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=100)
        for _ in range(5)
    ]
    with pytest.raises(BudgetExceeded):
        await guard.reserve(key_id="k2", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=100)
    for reservation in held:
        await guard.settle(reservation, input_tokens=50, output_tokens=50)
    snapshot = await guard.usage_snapshot("k2", limits)
    assert snapshot.period_spend_usd == Decimal("0.0005")
    # Unknown price: refused for a budgeted key, served (cost unknown) for the others.
    with pytest.raises(ModelPriceUnknown, match="mystery-model"):
        await guard.reserve(
            key_id="k2", limits=limits, model="mystery-model", input_tokens=1, max_output_tokens=1
        )
    free = await guard.reserve(
        key_id="k3", limits=KeyLimits(), model="mystery-model", input_tokens=1, max_output_tokens=1
    )
    assert await guard.settle(free, input_tokens=1, output_tokens=1) is None


async def test_reservations_of_a_dead_worker_expire_by_themselves(
    redis_port: int, context: RequestContext
) -> None:
    limiter, guard = make_guard(redis_port, prefix=f"t{uuid.uuid4().hex[:8]}", reservation_ttl_s=0.3)
    limits = KeyLimits(tokens=(TokenWindow(500, 60),), budget_usd=Decimal("0.0005"), budget_period="day")
    try:
        await guard.reserve(key_id="k", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=400)
        with pytest.raises(BudgetExceeded):  # over both: the budget is named (402 is not retried)
            await guard.reserve(
                key_id="k", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=400
            )
        # Nobody settles the first one: after its TTL the whole limit (and budget) is free again.
        deadline = time.monotonic() + 5
        while True:
            try:
                await guard.reserve(
                    key_id="k", limits=limits, model=MODEL, input_tokens=100, max_output_tokens=400
                )
                break
            except BudgetExceeded:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    finally:
        await limiter.aclose()


async def test_a_flushed_redis_rebuilds_the_period_spend_from_the_ledger_once(
    redis_port: int, context: RequestContext
) -> None:
    calls: list[tuple[str, datetime]] = []

    async def spend_since(key_id: str, since: datetime) -> Decimal:
        calls.append((key_id, since))
        await asyncio.sleep(0.05)  # a database round trip: concurrent requests must wait for this one
        return Decimal("0.0009")

    prefix = f"t{uuid.uuid4().hex[:8]}"
    limiter, guard = make_guard(redis_port, prefix=prefix, spend_source=spend_since)
    limits = KeyLimits.of(budget_usd="0.001", budget_period="month")
    try:
        first = await guard.reserve(
            key_id="kf", limits=limits, model=MODEL, input_tokens=10, max_output_tokens=40
        )
        assert calls == [("kf", period_window("month").start)]
        await guard.settle(first, input_tokens=10, output_tokens=40)
        redis.Redis(port=redis_port).flushdb()  # our own server
        results = await asyncio.gather(
            *(
                guard.reserve(key_id="kf", limits=limits, model=MODEL, input_tokens=10, max_output_tokens=40)
                for _ in range(10)
            ),
            return_exceptions=True,
        )
        # Rebuilt once (0.0009 spent): room for exactly 2 more worst cases of $0.00005.
        assert len(calls) == 2
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 2
        assert all(isinstance(r, BudgetExceeded) for r in results if isinstance(r, BaseException))
    finally:
        await limiter.aclose()


async def test_redis_down_budgeted_keys_fail_closed_others_get_their_worker_share(
    context: RequestContext,
) -> None:
    with own_redis() as (port, proc):
        limiter, guard = make_guard(port, prefix=f"t{uuid.uuid4().hex[:8]}", workers=2)
        try:
            tokens = KeyLimits(tokens=(TokenWindow(1000, 60),))
            held = await guard.reserve(
                key_id="k", limits=tokens, model=MODEL, input_tokens=100, max_output_tokens=100
            )
            proc.terminate()
            proc.wait(timeout=5)
            with pytest.raises(BudgetUnavailable):
                await guard.reserve(
                    key_id="b",
                    limits=KeyLimits.of(budget_usd=1),
                    model=MODEL,
                    input_tokens=1,
                    max_output_tokens=1,
                )
            # 1000 / 2 workers = 500 here, of which this worker already holds 200: 1 more of 200 fits.
            await guard.reserve(
                key_id="k", limits=tokens, model=MODEL, input_tokens=100, max_output_tokens=100
            )
            with pytest.raises(RateLimited):
                await guard.reserve(
                    key_id="k", limits=tokens, model=MODEL, input_tokens=100, max_output_tokens=100
                )
            await guard.settle(held, input_tokens=1, output_tokens=1)  # never raises during an outage
        finally:
            await limiter.aclose()


async def test_the_keys_of_one_reservation_share_a_cluster_hash_slot(guard: SpendGuard) -> None:
    keys = guard._keys("abc123def456", period_window("month").ident)
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert all(k.startswith("{") for k in keys)


# --- exactness across real parallel processes --------------------------------------------------------


def _reserve_many(port: int, prefix: str, count: int, limits: KeyLimits, queue: Any) -> None:
    async def run() -> int:
        limiter, guard = make_guard(port, prefix=prefix)

        async def one() -> bool:
            try:
                await guard.reserve(
                    key_id="shared", limits=limits, model=MODEL, input_tokens=30, max_output_tokens=70
                )
            except (RateLimited, BudgetExceeded):
                return False
            return True

        try:
            return sum(await asyncio.gather(*(one() for _ in range(count))))
        finally:
            await limiter.aclose()

    queue.put(asyncio.run(run()))


@pytest.mark.parametrize(
    "limits",
    [
        KeyLimits(tokens=(TokenWindow(100 * 37 + 50, 60),)),  # room for 37 worst cases of 100 tokens
        KeyLimits.of(budget_usd="0.00375", budget_period="day"),  # $0.0001 each: room for 37
    ],
    ids=["tokens", "budget"],
)
def test_concurrent_reservations_from_two_processes_admit_exactly_what_fits(
    redis_port: int, limits: KeyLimits
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_reserve_many, args=(redis_port, prefix, 128, limits, queue)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    admitted = sum(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=10)
    assert admitted == 37


async def test_usage_snapshot_reports_spend_tokens_and_requests(
    guard: SpendGuard, context: RequestContext
) -> None:
    limits = KeyLimits(tokens=(TokenWindow(10_000, 60),), budget_usd=Decimal(1), budget_period="week")
    assert guard._limiter is not None
    for _ in range(3):
        await guard._limiter.check_key("ks")
    held = await guard.reserve(key_id="ks", limits=limits, model=MODEL, input_tokens=10, max_output_tokens=90)
    done = await guard.reserve(key_id="ks", limits=limits, model=MODEL, input_tokens=10, max_output_tokens=90)
    await guard.settle(done, input_tokens=10, output_tokens=20)
    snapshot = await guard.usage_snapshot("ks", limits)
    assert snapshot.minute_requests == 3
    assert snapshot.minute_tokens == 30 + held.tokens  # settled plus still held
    assert snapshot.period_spend_usd == Decimal("0.00003")


async def test_fail_closed_refuses_token_limited_keys_while_redis_is_down(context: RequestContext) -> None:
    limiter, guard = make_guard(free_port(), prefix="t-closed", fail_closed=True)
    try:
        with pytest.raises(RateLimitBackendUnavailable) as refused:
            await guard.reserve(
                key_id="k", limits=KeyLimits.of(tpm=1000), model=MODEL, input_tokens=1, max_output_tokens=1
            )
        assert refused.value.headers["Retry-After"] == "1"
        # A key with no token limit and no budget needs no Redis at all.
        free = await guard.reserve(
            key_id="k", limits=KeyLimits(), model=MODEL, input_tokens=1, max_output_tokens=1
        )
        assert await guard.settle(free, input_tokens=1, output_tokens=1) == Decimal("0.000002")
    finally:
        await limiter.aclose()
