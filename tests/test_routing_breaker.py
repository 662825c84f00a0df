"""The breaker: shared through real Redis by two processes, in process without it, and Redis outages."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from llm_api.routing.breaker import Breaker, BreakerPolicy, MemoryBreakerStore
from tests.routing_support import Clock
from tests.support import ROOT, async_wait_until, free_port
from tests.test_ratelimit import own_redis

REDIS_URL = "redis://127.0.0.1:6379/0"
POLICY = BreakerPolicy(failures=3, window_s=30, cooldown_s=0.5)

# The other process: the same breaker code against the same Redis and key prefix.
OTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from llm_api.routing.breaker import Breaker, BreakerPolicy

    async def main(prefix: str, action: str) -> None:
        client = aioredis.Redis.from_url(sys.argv[3])
        policy = BreakerPolicy(failures=3, window_s=30, cooldown_s=0.5)
        breaker = Breaker(policy, redis=client, key_prefix=prefix)
        result = {}
        if action == "fail":
            result["opened"] = [await breaker.record_failure("claude-a") for _ in range(3)]
        elif action == "acquire":
            admission = await breaker.acquire("claude-a")
            result["admitted"], result["probe"] = admission.admitted, admission.probe
        result["state"] = (await breaker.state("claude-a")).as_dict()
        print(json.dumps(result))
        await client.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def other_process(prefix: str, action: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, prefix, action, REDIS_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (never a flush)."""
    name = f"test-router-{uuid.uuid4().hex}"
    yield name
    keys = [key async for key in redis_client.scan_iter(match=f"{name}:*")]
    if keys:
        await redis_client.delete(*keys)


async def test_a_cooldown_opened_by_one_process_is_seen_by_another_and_closed_by_one_probe(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    breaker = Breaker(POLICY, redis=redis_client, key_prefix=prefix)
    opened = other_process(prefix, "fail")
    assert opened["opened"] == [False, False, True]

    state = await breaker.state("claude-a")
    assert state.state == "open" and state.source == "redis"
    assert state.open_until is not None and state.open_until > time.time()
    refused = await breaker.acquire("claude-a")
    assert not refused.admitted and refused.retry_at == state.open_until

    async def half_open() -> bool:
        return (await breaker.state("claude-a")).state == "half-open"

    await async_wait_until(half_open, timeout=5.0)
    probe = await breaker.acquire("claude-a")
    assert probe.admitted and probe.probe
    # Exactly one probe: the other process is refused while ours is out.
    seen = other_process(prefix, "acquire")
    assert (seen["admitted"], seen["probe"]) == (False, False)
    assert seen["state"]["probe_in_flight"] is True  # type: ignore[index]

    await breaker.release(probe, "success")
    closed = other_process(prefix, "acquire")
    assert closed["admitted"] is True and closed["probe"] is False
    assert closed["state"]["state"] == "closed"  # type: ignore[index]


async def test_the_probe_is_claimed_atomically(redis_client: aioredis.Redis, prefix: str) -> None:
    breakers = [Breaker(POLICY, redis=redis_client, key_prefix=prefix) for _ in range(4)]
    for _ in range(3):
        await breakers[0].record_failure("claude-a")

    async def half_open() -> bool:
        return (await breakers[0].state("claude-a")).state == "half-open"

    await async_wait_until(half_open, timeout=5.0)
    admissions = await asyncio.gather(*(b.acquire("claude-a") for b in breakers for _ in range(5)))
    assert sum(a.admitted for a in admissions) == 1
    assert [a.probe for a in admissions if a.admitted] == [True]


async def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(failures=3, window_s=30, cooldown_s=30), clock=clock)
    await breaker.record_failure("d")
    await breaker.record_failure("d")
    clock.advance(31)
    assert await breaker.record_failure("d") is False
    assert (await breaker.state("d")).recent_failures == 1
    assert await breaker.record_failure("d") is False
    assert await breaker.record_failure("d") is True


@pytest.mark.parametrize("shared", [True, False])
async def test_a_longer_retry_after_extends_the_cooldown(
    shared: bool, redis_client: aioredis.Redis, prefix: str
) -> None:
    breaker = Breaker(
        BreakerPolicy(failures=1, cooldown_s=30), redis=redis_client if shared else None, key_prefix=prefix
    )
    await breaker.record_failure("d", retry_after_s=120)
    state = await breaker.state("d")
    assert state.open_until is not None
    assert 119 <= state.open_until - time.time() <= 121
    # A shorter one later does not shorten it; a longer one while open extends it.
    await breaker.record_failure("d", retry_after_s=5)
    assert (await breaker.state("d")).open_until == state.open_until
    await breaker.record_failure("d", retry_after_s=300)
    extended = (await breaker.state("d")).open_until
    assert extended is not None and 299 <= extended - time.time() <= 301


@pytest.mark.parametrize("shared", [True, False])
async def test_in_flight_requests_are_counted_per_deployment(
    shared: bool, redis_client: aioredis.Redis, prefix: str
) -> None:
    breaker = Breaker(POLICY, redis=redis_client if shared else None, key_prefix=prefix)
    admissions = [await breaker.acquire("a") for _ in range(3)] + [await breaker.acquire("b")]
    assert await breaker.in_flight(["a", "b", "c"]) == {"a": 3, "b": 1, "c": 0}
    for admission in admissions[:2]:
        await breaker.release(admission, "neutral")
    assert await breaker.in_flight(["a", "b"]) == {"a": 1, "b": 1}
    snapshot = [s.as_dict() for s in await breaker.snapshot(["a", "b"])]
    assert [(s["deployment"], s["state"], s["in_flight"]) for s in snapshot] == [
        ("a", "closed", 1),
        ("b", "closed", 1),
    ]


async def test_without_redis_state_is_per_process() -> None:
    one, other = Breaker(POLICY), Breaker(POLICY)
    for _ in range(3):
        await one.record_failure("claude-a")
    assert (await one.state("claude-a")).state == "open"
    assert (await one.state("claude-a")).source == "memory"
    assert (await other.state("claude-a")).state == "closed"


async def test_redis_down_falls_back_in_process_without_failing(caplog: pytest.LogCaptureFixture) -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    breaker = Breaker(POLICY, redis=dead, key_prefix="unused", recheck_interval_s=60)
    admission = await breaker.acquire("claude-a")
    assert admission.admitted and admission.store == MemoryBreakerStore.name
    for _ in range(3):
        await breaker.record_failure("claude-a")
    state = await breaker.state("claude-a")
    assert (state.state, state.source) == ("open", "memory")
    assert not breaker.shared
    warnings = [r for r in caplog.records if r.name == "llm_api.routing.breaker"]
    assert len(warnings) == 1 and "deciding in process" in warnings[0].getMessage()
    await dead.aclose()


async def test_scripts_redis_forgot_are_loaded_again_and_the_state_stays_shared() -> None:
    """A Redis restart or SCRIPT FLUSH between two calls: the breaker's scripts (sent by their SHA on the
    hot path) are loaded again, and the decision is still Redis's, not the process's."""
    with own_redis() as (port, _):
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        breaker = Breaker(POLICY, redis=client, key_prefix="flushed")
        admission = await breaker.acquire("claude-a")
        assert admission.admitted and admission.store == "redis"
        await client.script_flush()
        await breaker.release(admission, "success")
        await client.script_flush()
        opened = [await breaker.record_failure("claude-a") for _ in range(3)]
        await client.script_flush()
        refused = await breaker.acquire("claude-a")
        assert opened == [False, False, True]
        assert not refused.admitted and breaker.shared
        assert await client.hget("flushed:router:{claude-a}:state", "open_until")  # the cooldown is Redis's
        await client.aclose()


async def test_keys_carry_one_hash_tag_per_deployment(redis_client: aioredis.Redis, prefix: str) -> None:
    breaker = Breaker(POLICY, redis=redis_client, key_prefix=prefix)
    await breaker.record_failure("claude-a")
    await breaker.acquire("claude-a")
    keys = sorted([key.decode() async for key in redis_client.scan_iter(match=f"{prefix}:*")])
    assert keys == [f"{prefix}:router:{{claude-a}}:fails", f"{prefix}:router:{{claude-a}}:inflight"]
    assert all([await redis_client.pttl(key) > 0 for key in keys])  # nothing lingers


OPERATIONS = st.lists(
    st.one_of(
        st.just(("acquire",)),
        st.tuples(st.just("release"), st.sampled_from(["success", "failure", "neutral"])),
        st.tuples(st.just("fail"), st.none() | st.floats(min_value=0, max_value=100)),
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=40)),
    ),
    max_size=60,
)


@given(OPERATIONS)
def test_never_more_than_one_probe_and_open_means_refused(operations: list[tuple[object, ...]]) -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(failures=3, window_s=30, cooldown_s=30), clock=clock)

    async def run() -> None:
        held = []
        for operation in operations:
            state = await breaker.state("d")
            if operation[0] == "acquire":
                admission = await breaker.acquire("d")
                if state.state == "open":
                    assert not admission.admitted
                    assert admission.retry_at == state.open_until
                if admission.admitted:
                    held.append(admission)
                if admission.probe:
                    assert state.state == "half-open" and not state.probe_in_flight
            elif operation[0] == "release" and held:
                await breaker.release(held.pop(0), operation[1])  # type: ignore[arg-type]
            elif operation[0] == "fail":
                await breaker.record_failure("d", operation[1])  # type: ignore[arg-type]
            elif operation[0] == "advance":
                clock.advance(operation[1])  # type: ignore[arg-type]
            outstanding = [a for a in held if a.probe]
            assert len(outstanding) <= 1 or (await breaker.state("d")).state != "half-open"
            assert (await breaker.state("d")).in_flight == len(held)

    asyncio.run(run())
