"""The planner: targets in order, deployments drawn by weight (or least busy), unknown models refused."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_api.errors import NotFound
from llm_api.routing.plan import Planner, weighted_order
from tests.routing_support import REFERENCE, config

DRAWS = 400


def first_deployments(planner: Planner, requested: str, n: int = DRAWS) -> Counter[str]:
    return Counter(planner.plan(requested).targets[0].deployments[0].name for _ in range(n))


def test_a_model_is_one_target_with_every_deployment_serving_it() -> None:
    plan = Planner(config()).plan("claude-sonnet-4-5")
    assert plan.alias is None
    assert [t.model for t in plan.targets] == ["claude-sonnet-4-5"]
    assert sorted(d.name for d in plan.targets[0].deployments) == ["claude-a", "claude-b"]


def test_a_fallback_alias_keeps_its_order() -> None:
    planner = Planner(config())
    for _ in range(20):
        plan = planner.plan("smart")
        assert plan.alias == "smart"
        assert [t.model for t in plan.targets] == ["claude-opus-4-5", "gpt-4o"]
        assert [d.name for d in plan.targets[1].deployments] == ["openai"]
    assert planner.candidates("smart") == ("claude-a", "claude-b", "openai")


def test_requests_spread_in_proportion_to_weight() -> None:
    # weight 3 : 1, 400 draws: expected 300 : 100; binomial sd ~8.7, so +-35 is 4 sd.
    counts = first_deployments(Planner(config(), rng=random.Random(7)), "claude-opus-4-5")
    assert abs(counts["claude-a"] - 300) <= 35, counts
    assert counts["claude-a"] + counts["claude-b"] == DRAWS


def test_the_fallback_deployment_is_the_other_one() -> None:
    planner = Planner(config(), rng=random.Random(3))
    for _ in range(50):
        names = [d.name for d in planner.plan("claude-opus-4-5").targets[0].deployments]
        assert sorted(names) == ["claude-a", "claude-b"]


def test_a_weighted_alias_draws_its_first_target_by_weight_and_keeps_the_rest_as_fallbacks() -> None:
    text = REFERENCE.replace(
        "smart: {strategy: fallback, targets: [claude-opus-4-5, gpt-4o]}",
        "smart: {strategy: weighted, targets: [claude-opus-4-5, gpt-4o, llama-3-70b], "
        "weights: [2, 1, 1], cache: true}",
    )
    planner = Planner(config(text), rng=random.Random(11))
    plans = [planner.plan("smart") for _ in range(DRAWS)]
    firsts = Counter(plan.targets[0].model for plan in plans)
    assert abs(firsts["claude-opus-4-5"] - 200) <= 40, firsts
    assert abs(firsts["gpt-4o"] - 100) <= 35, firsts
    assert all(
        sorted(t.model for t in plan.targets) == ["claude-opus-4-5", "gpt-4o", "llama-3-70b"]
        for plan in plans
    )
    assert all(plan.cache is True for plan in plans)


def test_least_busy_picks_the_deployment_with_fewest_requests_in_flight() -> None:
    text = REFERENCE.replace(
        "max_attempts_total: 6", "max_attempts_total: 6\n  deployment_strategy: least-busy"
    )
    planner = Planner(config(text), rng=random.Random(5))
    for _ in range(50):
        plan = planner.plan("claude-opus-4-5", in_flight={"claude-a": 9, "claude-b": 2})
        assert [d.name for d in plan.targets[0].deployments] == ["claude-b", "claude-a"]
    # Equally busy: the weights decide.
    counts = Counter(
        planner.plan("claude-opus-4-5", in_flight={"claude-a": 1, "claude-b": 1})
        .targets[0]
        .deployments[0]
        .name
        for _ in range(DRAWS)
    )
    assert abs(counts["claude-a"] - 300) <= 35, counts


def test_a_model_nothing_serves_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        Planner(config()).plan("mistral-large")
    assert caught.value.status_code == 404
    assert "mistral-large" in caught.value.message


@given(st.lists(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=8), st.integers())
def test_weighted_order_is_a_permutation(weights: list[float], seed: int) -> None:
    items = list(range(len(weights)))
    assert sorted(weighted_order(items, weights, random.Random(seed))) == items
