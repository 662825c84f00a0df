"""What the breaker stores agree on: the policy, an admission ticket, an outcome, a deployment's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Outcome = Literal["success", "failure", "neutral"]
StateName = Literal["closed", "open", "half-open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """`failures` failed attempts within `window_s` open a deployment for `cooldown_s` (longer when the
    upstream's Retry-After says so). A probe claimed but never reported (its worker died) is given up after
    `probe_timeout_s`; an in-flight entry never released is forgotten after `in_flight_ttl_s`."""

    failures: int = 3
    window_s: float = 30.0
    cooldown_s: float = 30.0
    probe_timeout_s: float = 60.0
    in_flight_ttl_s: float = 900.0
    # While a probe is out, a refused request is told to come back after this long.
    probe_retry_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to "may a request go to this deployment now?".

    Admitted: `token` identifies the request in the in-flight count until it is released, and `probe` says
    it is the one request let through after a cooldown. Refused: `retry_at` (epoch seconds) is when the
    deployment may take requests again (the cooldown end, or a moment later when a probe is out)."""

    deployment: str
    admitted: bool
    token: str = ""
    probe: bool = False
    retry_at: float | None = None
    # Which store admitted it (so the release goes to the same one after a fallback to memory).
    store: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """One deployment as `GET /admin/deployments` shows it."""

    deployment: str
    state: StateName
    open_until: float | None
    recent_failures: int
    in_flight: int
    probe_in_flight: bool = False
    # "redis" (shared by every worker and instance) or "memory" (this worker only).
    source: str = "memory"

    def as_dict(self) -> dict[str, object]:
        return {
            "deployment": self.deployment,
            "state": self.state,
            "open_until": self.open_until,
            "recent_failures": self.recent_failures,
            "in_flight": self.in_flight,
            "probe_in_flight": self.probe_in_flight,
            "source": self.source,
        }


class BreakerStore(Protocol):
    """Where breaker state lives: one implementation in Redis (Lua), one in process."""

    name: str

    async def acquire(self, deployment: str, token: str) -> Admission: ...

    async def release(
        self, deployment: str, *, token: str, outcome: Outcome, retry_after_s: float | None, probe: bool
    ) -> bool:
        """Count the outcome (and end the in-flight entry `token`, if any); True if it opened the breaker."""
        ...

    async def state(self, deployment: str) -> DeploymentState: ...

    async def in_flight(self, deployments: Sequence[str]) -> dict[str, int]: ...
