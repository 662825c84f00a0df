"""Run one request along its plan: targets in order, cooling deployments skipped, one attempt budget.

    execute(plan, attempt, budget=AttemptBudget(6), breaker=breaker, chain=chain)

`attempt(target)` is the caller's per-target call: for JSON the whole completion, for a stream "open the
stream up to its first item" (exactly what RetryPolicy.call wraps today), so a stream falls back only
before anything reached the client. Inside it the caller may retry with its RetryPolicy, drawing from
`target.budget` (see routing/budget.py); every failed attempt counts against the deployment's breaker.

- A failure worth a fallback (`outcomes.falls_back`) passes the request to the next deployment of the
  target, then to the next target. The request's own errors (RequestRejected, UpstreamRejected) are
  raised at once, never retried elsewhere; nor is anything that is not an upstream failure.
- Every upstream call, first tries, retries and fallbacks alike, draws one attempt from `budget`; when it
  is spent the last upstream error is raised.
- When every deployment of every target is cooling down, nothing is sent: 503 `upstream_unavailable` with
  Retry-After the earliest cooldown end. With `wait_for_probe_s` > 0 (router.wait_for_probe_s; default 0,
  off) a request whose earliest cooldown ends within that time waits for it and tries once more instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from llm_api.errors import UpstreamRejected, UpstreamUnavailable
from llm_api.routing.breaker import Admission, Breaker
from llm_api.routing.budget import AttemptBudget
from llm_api.routing.chain import Hop, RouteChain
from llm_api.routing.config import ResolvedDeployment
from llm_api.routing.metrics import RouterMetrics
from llm_api.routing.outcomes import error_type_of, falls_back, is_cancellation, retry_after_of
from llm_api.routing.plan import Plan

T = TypeVar("T")

__all__ = ["Target", "TargetBudget", "execute"]


class TargetBudget:
    """The request's budget as one target's retries see it (the `RetryBudget` protocol)."""

    def __init__(
        self,
        budget: AttemptBudget,
        *,
        breaker: Breaker,
        hop: Hop,
        metrics: RouterMetrics | None,
    ) -> None:
        self._budget = budget
        self._breaker = breaker
        self._hop = hop
        self._metrics = metrics
        self._counted: BaseException | None = None
        self.cooling = False

    async def failed(self, error: BaseException) -> None:
        if error is self._counted or not falls_back(error):
            return
        self._counted = error
        opened = await self._breaker.record_failure(self._hop.deployment, retry_after_of(error))
        if opened:
            self.cooling = True
            if self._metrics is not None:
                self._metrics.record_cooldown_opened(deployment=self._hop.deployment)

    def spend(self) -> bool:
        if self.cooling or not self._budget.spend():
            return False
        self._hop.attempts += 1
        return True


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment of one model, as handed to the caller's `attempt`."""

    model: str
    deployment: ResolvedDeployment
    alias: str | None
    budget: TargetBudget

    @property
    def provider(self) -> str:
        return self.deployment.provider


async def execute(
    plan: Plan,
    attempt: Callable[[Target], Awaitable[T]],
    *,
    budget: AttemptBudget,
    breaker: Breaker,
    chain: RouteChain | None = None,
    metrics: RouterMetrics | None = None,
    wait_for_probe_s: float = 0.0,
    hold: bool = False,
) -> T:
    """The first good answer along `plan`; see the module docstring for the rules.

    With `hold` (streams) the serving deployment's in-flight entry stays open until `chain.finish()`.
    """
    if hold and chain is None:
        raise ValueError("hold=True needs a chain to finish")
    chain = chain if chain is not None else RouteChain()
    deadline = time.monotonic() + wait_for_probe_s
    last_error: BaseException | None = None
    previous: Hop | None = None
    while True:
        reopen_at: float | None = None
        for target_plan in plan.targets:
            for deployment in target_plan.deployments:
                if budget.remaining <= 0:
                    if last_error is not None:
                        raise last_error
                    raise UpstreamUnavailable("no upstream attempt left for this request", provider="router")
                admission = await breaker.acquire(deployment.name)
                hop = Hop(target_plan.model, deployment.name, deployment.provider)
                chain.hops.append(hop)
                if not admission.admitted:
                    hop.outcome = "skipped"
                    if admission.retry_at is not None:
                        reopen_at = (
                            admission.retry_at if reopen_at is None else min(reopen_at, admission.retry_at)
                        )
                    continue
                budget.spend()
                hop.attempts = 1
                if previous is not None and metrics is not None:
                    metrics.record_fallback(
                        from_deployment=previous.deployment,
                        from_model=previous.model,
                        to_deployment=hop.deployment,
                        to_model=hop.model,
                    )
                view = TargetBudget(budget, breaker=breaker, hop=hop, metrics=metrics)
                target = Target(target_plan.model, deployment, plan.alias, view)
                try:
                    value = await attempt(target)
                except BaseException as exc:
                    await _failed(exc, hop=hop, admission=admission, view=view, breaker=breaker)
                    if metrics is not None:
                        metrics.record_request(
                            deployment=hop.deployment, model=hop.model, outcome=hop.outcome
                        )
                    if hop.outcome != "failed":
                        raise
                    last_error, previous = exc, hop
                    continue
                if metrics is not None:
                    metrics.record_request(deployment=hop.deployment, model=hop.model, outcome="ok")
                chain.served = target
                if hold:
                    chain.hold(breaker, admission)
                else:
                    await breaker.release(admission, "success")
                return value
        if last_error is not None:
            raise last_error
        assert reopen_at is not None, "a plan always names at least one deployment"
        wait_s = reopen_at - time.time()
        if wait_for_probe_s > 0 and time.monotonic() + wait_s <= deadline:
            await asyncio.sleep(max(0.0, wait_s))
            continue
        if metrics is not None:
            metrics.record_unavailable()
        raise UpstreamUnavailable(
            f"every deployment serving '{plan.requested}' is cooling down; try again later",
            provider="router",
            retry_after_s=max(0.0, wait_s),
        )


async def _failed(
    exc: BaseException, *, hop: Hop, admission: Admission, view: TargetBudget, breaker: Breaker
) -> None:
    """Count an attempt's failure and end its in-flight entry; sets `hop.outcome` ("failed": fall back)."""
    hop.error_type = error_type_of(exc)
    if is_cancellation(exc):
        hop.outcome = "cancelled"
        await _release_shielded(breaker, admission)
    elif falls_back(exc):
        hop.outcome = "failed"
        await view.failed(exc)
        await breaker.release(admission, "neutral")
    elif isinstance(exc, UpstreamRejected):
        # The deployment answered, properly: a probe that gets a 400 proves it is back.
        hop.outcome = "rejected"
        await breaker.release(admission, "success")
    else:
        hop.outcome = "rejected" if getattr(exc, "status_code", 500) < 500 else "error"
        await breaker.release(admission, "neutral")


async def _release_shielded(breaker: Breaker, admission: Admission) -> None:
    """Release even if cancelled again meanwhile (a leaked probe claim would hold a deployment half-open
    until probe_timeout_s); the original cancellation is re-raised by the caller."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(asyncio.ensure_future(breaker.release(admission, "neutral")))
