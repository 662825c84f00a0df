"""From a requested model or alias to the ordered targets, each with the deployments that serve it.

    plan("smart")  ->  Plan(targets=(
        TargetPlan(model="claude-opus-4-5", deployments=(claude-a, claude-b)),   # drawn by weight
        TargetPlan(model="gpt-4o",          deployments=(openai,)),
    ))

A `fallback` alias keeps its targets in file order; a `weighted` alias draws the first target by weight
and keeps drawing (without replacement) for the fallbacks. A plain model is one target. Among the
deployments of one target, `random-weighted` draws an order in proportion to `weight` (the first is where
the request goes; the rest are its fallbacks), `least-busy` sorts by in-flight requests, ties drawn by
weight. Pure logic: the caller passes the in-flight counts (Breaker.in_flight) for least-busy.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from llm_api.errors import NotFound
from llm_api.routing.config import GatewayConfig, ResolvedDeployment

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TargetPlan:
    model: str
    deployments: tuple[ResolvedDeployment, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to try for one request, in order. `alias` is None when a model was named directly."""

    requested: str
    alias: str | None
    targets: tuple[TargetPlan, ...]
    cache: bool | None = None

    @property
    def deployment_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for target in self.targets:
            for deployment in target.deployments:
                seen.setdefault(deployment.name)
        return tuple(seen)


class Planner:
    """Builds a Plan per request from the gateway file."""

    def __init__(self, config: GatewayConfig, *, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()
        self._serving: dict[str, tuple[ResolvedDeployment, ...]] = {}

    @property
    def least_busy(self) -> bool:
        return self._config.router.deployment_strategy == "least-busy"

    def candidates(self, requested: str) -> tuple[str, ...]:
        """Every deployment a request for `requested` could reach (to read their in-flight counts first)."""
        models = self.target_models(requested)
        return tuple(dict.fromkeys(d.name for model in models for d in self._serves(model)))

    def target_models(self, requested: str) -> tuple[str, ...]:
        """The models a request for `requested` may be served by: an alias's targets, else itself."""
        alias = self._config.aliases.get(requested)
        return tuple(alias.targets) if alias is not None else (requested,)

    def plan(self, requested: str, *, in_flight: Mapping[str, int] | None = None) -> Plan:
        """The ordered targets for `requested`; NotFound (404) when nothing serves it."""
        alias = self._config.aliases.get(requested)
        if alias is None:
            deployments = self._serves(requested)
            if not deployments:
                raise NotFound(f"model '{requested}' is not served by this gateway")
            return Plan(requested, None, (TargetPlan(requested, self._order(deployments, in_flight)),))
        models: Sequence[str] = alias.targets
        if alias.strategy == "weighted":
            weights = alias.weights or [1.0] * len(models)
            models = weighted_order(models, weights, self._rng)
        targets = tuple(TargetPlan(m, self._order(self._serves(m), in_flight)) for m in models)
        return Plan(requested, requested, targets, cache=alias.cache)

    def _serves(self, model: str) -> tuple[ResolvedDeployment, ...]:
        found = self._serving.get(model)
        if found is None:
            found = self._config.serving(model)
            if len(self._serving) < 10_000:  # client-chosen names: bounded memo
                self._serving[model] = found
        return found

    def _order(
        self, deployments: tuple[ResolvedDeployment, ...], in_flight: Mapping[str, int] | None
    ) -> tuple[ResolvedDeployment, ...]:
        if len(deployments) < 2:
            return deployments
        drawn = weighted_order(deployments, [d.weight for d in deployments], self._rng)
        if self.least_busy and in_flight is not None:
            # sorted() is stable: among equally busy deployments the weighted draw decides.
            drawn = sorted(drawn, key=lambda d: in_flight.get(d.name, 0))
        return tuple(drawn)


def weighted_order(items: Sequence[T], weights: Sequence[float], rng: random.Random) -> list[T]:
    """A random order where each next item is drawn in proportion to its weight among those left
    (Efraimidis-Spirakis: sort by u ** (1 / w), largest first)."""
    keys = [rng.random() ** (1.0 / weight) for weight in weights]
    return [item for _, item in sorted(zip(keys, items, strict=True), key=lambda pair: -pair[0])]
