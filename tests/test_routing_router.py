"""The Router facade: plans (least-busy reads the shared in-flight counts), runs, and lists deployments."""

from __future__ import annotations

import random

import pytest

from llm_api.errors import UpstreamUnavailable
from llm_api.routing.breaker import Breaker, BreakerPolicy
from llm_api.routing.chain import RouteChain
from llm_api.routing.router import Router
from tests.routing_support import REFERENCE, Upstream, config, overloaded


async def test_least_busy_follows_the_in_flight_counts() -> None:
    text = REFERENCE.replace(
        "max_attempts_total: 6", "max_attempts_total: 6\n  deployment_strategy: least-busy"
    )
    router = Router(config(text), breaker=Breaker(BreakerPolicy()), rng=random.Random(1))
    held = [await router.breaker.acquire("claude-a") for _ in range(2)]
    for _ in range(20):
        plan = await router.plan("claude-opus-4-5")
        assert plan.targets[0].deployments[0].name == "claude-b"
    for admission in held:
        await router.breaker.release(admission, "neutral")
    await router.breaker.acquire("claude-b")
    assert (await router.plan("claude-opus-4-5")).targets[0].deployments[0].name == "claude-a"


async def test_execute_uses_the_files_budget_and_lists_deployment_states() -> None:
    router = Router.build(config())
    upstream = Upstream({"claude-a": [overloaded], "claude-b": [overloaded], "openai": [overloaded]})
    chain = RouteChain()
    plan = await router.plan("smart")
    with pytest.raises(UpstreamUnavailable):
        await router.execute(plan, upstream, chain=chain)
    assert len(upstream.calls) == 3  # one per deployment: no retries in this attempt
    listing = {d["name"]: d for d in await router.deployments()}
    assert listing["claude-a"]["state"] == "closed" and listing["claude-a"]["recent_failures"] == 1
    assert listing["openai"]["base_url"] == "https://api.openai.com/v1"
    assert "api_key" not in listing["openai"]
    assert set(listing["local"]) == {
        "name", "provider", "base_url", "models", "weight", "state", "open_until",
        "recent_failures", "in_flight", "probe_in_flight", "source",
    }  # fmt: skip
