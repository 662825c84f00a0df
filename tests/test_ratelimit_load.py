"""The request limit under real load: 256 concurrent connections on 2 workers admit exactly the limit,
and a shared Redis that stays up is never reported unavailable (the measured 3.6x defect)."""

from __future__ import annotations

import asyncio
import math
import uuid

from limits import parse
from redis.cluster import key_slot

from llm_api.errors import RateLimited
from llm_api.security.limit_rules import parse_limit
from llm_api.security.ratelimit import RateLimiter, worker_share
from llm_api.security.windows import RedisSlidingWindow
from tests.load import fire
from tests.support import (
    CLIENT_KEY,
    Emulator,
    async_inside_one_window,
    async_wait_until,
    free_port,
    gateway_env,
    run_gateway,
)
from tests.test_ratelimit import SHARED_REDIS, own_redis

BODY = {"messages": [{"role": "user", "content": "hello"}]}


def test_256_concurrent_connections_admit_exactly_the_limit(emu: Emulator) -> None:
    env = gateway_env(
        emu,
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex[:10]}",
        RATE_LIMIT="600/minute",
        RATE_LIMIT_REDIS_TIMEOUT_S="1",
    )
    with run_gateway(env) as gateway:
        statuses, _ = fire(gateway.base_url, CLIENT_KEY, total=900, concurrency=256, body=lambda _: BODY)
        records = gateway.log_records()
    assert statuses == {200: 600, 429: 300}
    assert len(emu.requests()) == 600  # nothing refused went upstream
    messages = [r["message"] for r in records if r.get("logger") == "llm_api.ratelimit"]
    assert not [m for m in messages if "unavailable" in m]
    assert {r["pid"] for r in records if r.get("logger") == "llm_api.access"}.__len__() == 2


def test_the_keys_of_one_check_share_a_cluster_hash_slot() -> None:
    # Redis Cluster runs a script only on keys of one slot (LiteLLM #15066): limits' names carry a hash tag.
    storage_limiter = RateLimiter(
        default=parse_limit("5/minute", setting="x"), auth_failure=(), redis_uri="async+redis://127.0.0.1:1"
    )
    assert storage_limiter._redis is not None
    window = RedisSlidingWindow(storage_limiter._redis)
    keys = window._keys(parse("5/minute"), ("key", "abc123"))
    assert len(keys) == 2 and all("{" in k and "}" in k for k in keys)
    assert len({key_slot(k.encode()) for k in keys}) == 1


async def test_outage_fallback_allows_each_worker_its_share_and_carries_the_count_across_flaps() -> None:
    assert worker_share(parse("10/minute"), 3).amount == math.ceil(10 / 3)
    port = free_port()
    limiter = RateLimiter(
        default=parse_limit("10/minute", setting="RATE_LIMIT"),
        auth_failure=(),
        redis_uri=f"async+redis://127.0.0.1:{port}",
        key_prefix=f"test-{uuid.uuid4().hex[:8]}",
        redis_timeout_s=0.2,
        probe_interval_s=0.05,
        workers=2,
    )

    async def admitted(attempts: int) -> int:
        count = 0
        for _ in range(attempts):
            try:
                await limiter.check_key("abc")
                count += 1
            except RateLimited:
                pass
        return count

    await async_inside_one_window(15)  # the in-process count below must stay in one minute window
    try:
        with own_redis(port) as (_, proc):
            assert await admitted(3) == 3  # shared: counted in Redis and in this worker's share (5)
            proc.terminate()
            proc.wait(timeout=5)
            # Redis gone: this worker may admit 5 - 3 more, not a fresh 10 (nor a fresh 5).
            assert await admitted(6) == 2
            assert limiter.degraded
        with own_redis(port):
            await async_wait_until(lambda: not limiter.degraded, timeout=10)
            assert await admitted(1) == 1  # Redis is back and counts 4 of 10
        # The next outage continues the in-process count of this window: nothing more.
        assert await admitted(3) == 0
        assert limiter.degraded
    finally:
        await limiter.aclose()


async def test_a_busy_pool_is_not_an_outage() -> None:
    with own_redis() as (port, _):
        limiter = RateLimiter(
            default=parse_limit("1000/minute", setting="RATE_LIMIT"),
            auth_failure=(),
            redis_uri=f"async+redis://127.0.0.1:{port}",
            key_prefix=f"test-{uuid.uuid4().hex[:8]}",
            redis_max_connections=2,  # far fewer connections than concurrent checks
            redis_timeout_s=0.5,
        )
        try:
            await asyncio.gather(*(limiter.check_key("abc") for _ in range(300)))
            assert not limiter.degraded
        finally:
            await limiter.aclose()
