"""What one request went through: the deployments tried, in order, and how each ended.

The access log, the span and the usage ledger record `RouteChain.as_records()`: names from the gateway
file, outcomes and error types, never request content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from llm_api.routing.outcomes import error_type_of, falls_back, retry_after_of

if TYPE_CHECKING:
    from llm_api.routing.breaker import Admission, Breaker
    from llm_api.routing.executor import Target

HopOutcome = Literal["ok", "failed", "rejected", "cancelled", "error", "skipped"]


@dataclass(slots=True)
class Hop:
    model: str
    deployment: str
    provider: str
    outcome: HopOutcome = "ok"
    error_type: str | None = None
    attempts: int = 0

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {
            "model": self.model,
            "deployment": self.deployment,
            "provider": self.provider,
            "outcome": self.outcome,
            "attempts": self.attempts,
        }
        if self.error_type is not None:
            record["error_type"] = self.error_type
        return record


@dataclass(slots=True)
class RouteChain:
    """Filled in by `execute`; `served` is the target that answered (None if none did)."""

    hops: list[Hop] = field(default_factory=list)
    served: Target | None = None
    # A stream's admission, held until the stream ends (execute(..., hold=True)); see `finish`.
    _held: tuple[Breaker, Admission] | None = None

    @property
    def attempts(self) -> int:
        return sum(hop.attempts for hop in self.hops)

    @property
    def fallbacks(self) -> int:
        """How many times the request moved on to another deployment after trying one."""
        tried = [hop for hop in self.hops if hop.attempts]
        return max(0, len(tried) - 1)

    def as_records(self) -> list[dict[str, object]]:
        return [hop.as_record() for hop in self.hops]

    def hold(self, breaker: Breaker, admission: Admission) -> None:
        """Keep the serving deployment's admission until `finish` (a stream in progress)."""
        self._held = (breaker, admission)

    async def finish(self, error: BaseException | None = None) -> None:
        """End a held stream: releases its in-flight entry; a failure worth a fallback after the first
        delta (too late to fall back) still counts against the deployment. Safe to call twice."""
        held, self._held = self._held, None
        if held is None:
            return
        breaker, admission = held
        if error is not None and falls_back(error):
            await breaker.record_failure(admission.deployment, retry_after_of(error))
            if self.hops:
                self.hops[-1].outcome = "failed"
                self.hops[-1].error_type = error_type_of(error)
            await breaker.release(admission, "neutral")
        else:
            await breaker.release(admission, "success" if error is None else "neutral")
