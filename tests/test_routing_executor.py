"""The executor with real exceptions from llm_api.errors and plain async callables as the attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tenacity import AsyncRetrying, retry_if_exception, wait_none

from llm_api.errors import (
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from llm_api.routing.breaker import Breaker, BreakerPolicy
from llm_api.routing.budget import AttemptBudget, RetryBudget, budget_stop
from llm_api.routing.chain import RouteChain
from llm_api.routing.config import GatewayConfig
from llm_api.routing.executor import Target, execute
from llm_api.routing.metrics import RouterMetrics
from llm_api.routing.plan import Plan, TargetPlan
from llm_api.services.retry import is_transient
from tests.routing_support import Clock, Upstream, config, overloaded

T = TypeVar("T")
CFG = config()


def plan_of(cfg: GatewayConfig, *targets: tuple[str, list[str]], alias: str | None = None) -> Plan:
    return Plan(
        requested=alias or targets[0][0],
        alias=alias,
        targets=tuple(TargetPlan(model, tuple(cfg.deployment(d) for d in names)) for model, names in targets),
    )


CLAUDE_AB = plan_of(CFG, ("claude-opus-4-5", ["claude-a", "claude-b"]))
SMART = plan_of(CFG, ("claude-opus-4-5", ["claude-a", "claude-b"]), ("gpt-4o", ["openai"]), alias="smart")


def breaker(clock: Clock | None = None, **policy: float) -> Breaker:
    return Breaker(BreakerPolicy(**policy), clock=clock or Clock())  # type: ignore[arg-type]


async def with_retries(operation: Callable[[], Awaitable[T]], *, attempts: int, budget: RetryBudget) -> T:
    """RetryPolicy.call with the one proposed change (stop=budget_stop(...)), without waits."""
    retrying = AsyncRetrying(
        stop=budget_stop(attempts, budget),
        wait=wait_none(),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable")


async def test_falls_back_to_the_second_deployment_on_overload() -> None:
    upstream = Upstream({"claude-a": [overloaded]})
    chain = RouteChain()
    result = await execute(CLAUDE_AB, upstream, budget=AttemptBudget(6), breaker=breaker(), chain=chain)
    assert result == "ok from claude-b (claude-opus-4-5)"
    assert upstream.calls == ["claude-a", "claude-b"]
    assert [(h["deployment"], h["outcome"]) for h in chain.as_records()] == [
        ("claude-a", "failed"),
        ("claude-b", "ok"),
    ]
    assert chain.as_records()[0]["error_type"] == "upstream_unavailable"
    assert chain.served is not None and chain.served.deployment.name == "claude-b"


@pytest.mark.parametrize(
    "error",
    [
        lambda: UpstreamRateLimited("429", provider="anthropic", upstream_status=429),
        lambda: UpstreamTimeout("timeout", provider="anthropic"),
        lambda: UpstreamAuthFailed("bad key", provider="anthropic", upstream_status=401),
        overloaded,
    ],
)
async def test_falls_back_across_providers_to_the_next_target(error: Callable[[], BaseException]) -> None:
    upstream = Upstream({"claude-a": [error], "claude-b": [error]})
    chain = RouteChain()
    result = await execute(SMART, upstream, budget=AttemptBudget(6), breaker=breaker(), chain=chain)
    assert result == "ok from openai (gpt-4o)"
    assert upstream.calls == ["claude-a", "claude-b", "openai"]
    assert chain.served is not None and chain.served.provider == "openai"
    assert chain.fallbacks == 2


@pytest.mark.parametrize(
    "error",
    [
        lambda: UpstreamRejected("bad request", provider="anthropic", upstream_status=400),
        lambda: UpstreamRejected("not found", provider="anthropic", upstream_status=404),
        lambda: UpstreamRejected("too large", provider="anthropic", upstream_status=413),
        lambda: InvalidRequest("invalid"),
    ],
)
async def test_the_requests_own_errors_never_fall_back_nor_count(error: Callable[[], BaseException]) -> None:
    brk = breaker(failures=1)
    upstream = Upstream({"claude-a": [error]})
    with pytest.raises(type(error())):
        await execute(SMART, upstream, budget=AttemptBudget(6), breaker=brk)
    assert upstream.calls == ["claude-a"]
    state = await brk.state("claude-a")
    assert (state.state, state.recent_failures, state.in_flight) == ("closed", 0, 0)


async def test_one_budget_bounds_retries_and_fallbacks_together() -> None:
    upstream = Upstream({"claude-a": [overloaded], "claude-b": [overloaded], "openai": [overloaded]})
    budget = AttemptBudget(6)

    async def attempt(target: Target) -> str:
        return await with_retries(lambda: upstream(target), attempts=4, budget=target.budget)

    # Cooldowns out of the way (failures=100): this is about the budget alone.
    with pytest.raises(UpstreamUnavailable):
        await execute(SMART, attempt, budget=budget, breaker=breaker(failures=100))
    assert len(upstream.calls) == 6
    assert upstream.calls == ["claude-a"] * 4 + ["claude-b"] * 2
    assert budget.remaining == 0


async def test_every_failed_attempt_counts_and_a_cooling_deployment_stops_its_retries() -> None:
    brk = breaker(failures=3)
    upstream = Upstream({"claude-a": [overloaded]})
    chain = RouteChain()

    async def attempt(target: Target) -> str:
        return await with_retries(lambda: upstream(target), attempts=10, budget=target.budget)

    result = await execute(CLAUDE_AB, attempt, budget=AttemptBudget(10), breaker=brk, chain=chain)
    assert result == "ok from claude-b (claude-opus-4-5)"
    # Three failures opened claude-a's breaker: its retries stopped there and the request moved on.
    assert upstream.calls == ["claude-a"] * 3 + ["claude-b"]
    assert [h.attempts for h in chain.hops] == [3, 1]
    assert (await brk.state("claude-a")).state == "open"


async def test_all_targets_cooling_gives_503_with_retry_after_and_sends_nothing() -> None:
    brk = breaker(failures=1, cooldown_s=30)
    for name in ("claude-a", "claude-b", "openai"):
        await brk.record_failure(name, retry_after_s=45 if name == "openai" else None)
    upstream = Upstream({})
    with pytest.raises(UpstreamUnavailable) as caught:
        await execute(SMART, upstream, budget=AttemptBudget(6), breaker=brk)
    assert upstream.calls == []
    assert caught.value.status_code == 503
    assert caught.value.error_type == "upstream_unavailable"
    # The earliest end: the claude breakers' 30 s, not openai's Retry-After-extended 45 s.
    assert 29 <= int(caught.value.headers["Retry-After"]) <= 30


async def test_a_request_may_wait_briefly_for_the_cooldown_to_end() -> None:
    brk = Breaker(BreakerPolicy(failures=1, cooldown_s=0.1))
    await brk.record_failure("claude-a")
    await brk.record_failure("claude-b")
    upstream = Upstream({})
    result = await execute(CLAUDE_AB, upstream, budget=AttemptBudget(6), breaker=brk, wait_for_probe_s=2)
    assert result.startswith("ok from claude-")
    assert len(upstream.calls) == 1  # the probe
    assert (await brk.state(upstream.calls[0])).state == "closed"


async def test_after_the_cooldown_one_probe_closes_the_breaker() -> None:
    clock = Clock()
    brk = breaker(clock, failures=1, cooldown_s=30)
    await brk.record_failure("claude-a")
    upstream = Upstream({})
    plan = plan_of(CFG, ("claude-opus-4-5", ["claude-a"]))
    with pytest.raises(UpstreamUnavailable):
        await execute(plan, upstream, budget=AttemptBudget(6), breaker=brk)
    clock.advance(31)
    assert (await brk.state("claude-a")).state == "half-open"
    assert (
        await execute(plan, upstream, budget=AttemptBudget(6), breaker=brk)
        == "ok from claude-a (claude-opus-4-5)"
    )
    assert (await brk.state("claude-a")).state == "closed"


async def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    brk = breaker(clock, failures=1, cooldown_s=30)
    await brk.record_failure("claude-a")
    clock.advance(31)
    upstream = Upstream({"claude-a": [overloaded]})
    chain = RouteChain()
    assert await execute(CLAUDE_AB, upstream, budget=AttemptBudget(6), breaker=brk, chain=chain) == (
        "ok from claude-b (claude-opus-4-5)"
    )
    state = await brk.state("claude-a")
    assert state.state == "open"
    assert state.open_until == pytest.approx(clock.now + 30)


async def test_a_cancelled_attempt_is_not_a_failure_and_frees_its_probe() -> None:
    clock = Clock()
    brk = breaker(clock, failures=1)
    await brk.record_failure("claude-a")
    clock.advance(31)

    async def cancelled(target: Target) -> str:
        raise asyncio.CancelledError

    plan = plan_of(CFG, ("claude-opus-4-5", ["claude-a"]))
    with pytest.raises(asyncio.CancelledError):
        await execute(plan, cancelled, budget=AttemptBudget(6), breaker=brk)
    state = await brk.state("claude-a")
    assert (state.state, state.probe_in_flight, state.in_flight) == ("half-open", False, 0)


async def test_a_held_stream_stays_in_flight_until_finished_and_late_failures_count() -> None:
    brk = breaker(failures=1)
    chain = RouteChain()
    plan = plan_of(CFG, ("gpt-4o", ["openai"]))
    await execute(plan, Upstream({}), budget=AttemptBudget(6), breaker=brk, chain=chain, hold=True)
    assert (await brk.in_flight(["openai"])) == {"openai": 1}
    await chain.finish(overloaded("openai"))  # failed after its first delta: too late to fall back
    await chain.finish()
    state = await brk.state("openai")
    assert (state.state, state.in_flight) == ("open", 0)
    assert chain.hops[-1].outcome == "failed"


async def test_metrics_count_fallbacks_cooldowns_and_requests_by_deployment() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = RouterMetrics(provider)
    upstream = Upstream({"claude-a": [overloaded], "claude-b": [overloaded]})
    await execute(SMART, upstream, budget=AttemptBudget(6), breaker=breaker(failures=1), metrics=metrics)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[dict[str, object]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    {**dict(p.attributes or {}), "value": p.value}  # type: ignore[union-attr]
                    for p in metric.data.data_points
                ]
    assert {
        (p["llm_api.router.from_deployment"], p["llm_api.router.to_deployment"])
        for p in points["llm_api.router.fallbacks"]
    } == {("claude-a", "claude-b"), ("claude-b", "openai")}
    assert {p["llm_api.router.deployment"] for p in points["llm_api.router.cooldowns_opened"]} == {
        "claude-a",
        "claude-b",
    }
    outcomes = {
        (p["llm_api.router.deployment"], p["llm_api.router.outcome"])
        for p in points["llm_api.router.requests"]
    }
    assert outcomes == {("claude-a", "failed"), ("claude-b", "failed"), ("openai", "ok")}
    provider.shutdown()
