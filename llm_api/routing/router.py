"""The router as the service uses it: one object per worker, built in the lifespan from the gateway file.

Per request: `plan = await router.plan(model)` (NotFound, 404, if nothing serves it), then
`await router.execute(plan, attempt, chain=chain)` where `attempt(target)` is the per-target call;
afterwards `chain.served` is the Target that answered (for the X-LLM-* headers) and `chain.as_records()`
the chain tried (for the access log, the span and the ledger).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from opentelemetry.metrics import MeterProvider

from llm_api.routing.breaker import Breaker, BreakerPolicy
from llm_api.routing.budget import AttemptBudget
from llm_api.routing.chain import RouteChain
from llm_api.routing.config import GatewayConfig
from llm_api.routing.executor import Target, execute
from llm_api.routing.metrics import RouterMetrics
from llm_api.routing.plan import Plan, Planner

T = TypeVar("T")


class Router:
    """Plans and runs requests over the deployments of one gateway file."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        breaker: Breaker,
        metrics: RouterMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.breaker = breaker
        self._planner = Planner(config, rng=rng)
        self._metrics = metrics

    @classmethod
    def build(
        cls,
        config: GatewayConfig,
        *,
        redis: Any | None = None,
        key_prefix: str = "llm_api",
        redis_timeout_s: float = 0.25,
        meter_provider: MeterProvider | None = None,
    ) -> Router:
        """The router for `config`; with `redis` (a redis.asyncio client) cooldowns are shared."""
        cooldown = config.router.cooldown
        policy = BreakerPolicy(
            failures=cooldown.failures, window_s=cooldown.window_s, cooldown_s=cooldown.cooldown_s
        )
        breaker = Breaker(policy, redis=redis, key_prefix=key_prefix, redis_timeout_s=redis_timeout_s)
        metrics = RouterMetrics(meter_provider) if meter_provider is not None else None
        return cls(config, breaker=breaker, metrics=metrics)

    async def plan(self, requested: str) -> Plan:
        """The ordered targets for a model or alias (least-busy reads the in-flight counts first)."""
        in_flight = None
        if self._planner.least_busy:
            in_flight = await self.breaker.in_flight(self._planner.candidates(requested))
        return self._planner.plan(requested, in_flight=in_flight)

    def target_models(self, requested: str) -> tuple[str, ...]:
        """The models that may serve a request for `requested` (what its reservation is priced by)."""
        return self._planner.target_models(requested)

    def budget(self) -> AttemptBudget:
        """A fresh budget of router.max_attempts_total upstream attempts, for one request."""
        return AttemptBudget(self.config.router.max_attempts_total)

    async def execute(
        self,
        plan: Plan,
        attempt: Callable[[Target], Awaitable[T]],
        *,
        chain: RouteChain,
        budget: AttemptBudget | None = None,
        hold: bool = False,
    ) -> T:
        """`execute` with this router's breaker, metrics and wait_for_probe_s."""
        return await execute(
            plan,
            attempt,
            budget=budget or self.budget(),
            breaker=self.breaker,
            chain=chain,
            metrics=self._metrics,
            wait_for_probe_s=self.config.router.wait_for_probe_s,
            hold=hold,
        )

    async def deployments(self) -> list[dict[str, object]]:
        """Every deployment's state for `GET /admin/deployments` (no key, no URL credentials)."""
        states = await self.breaker.snapshot([d.name for d in self.config.deployments])
        listing: list[dict[str, object]] = []
        for deployment, state in zip(self.config.deployments, states, strict=True):
            listing.append(
                {
                    "name": deployment.name,
                    "provider": deployment.provider,
                    "base_url": deployment.base_url,
                    "models": list(deployment.spec.models),
                    "weight": deployment.weight,
                    **{k: v for k, v in state.as_dict().items() if k != "deployment"},
                }
            )
        return listing
