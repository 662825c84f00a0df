"""Breaker state in process: used without Redis, and while Redis does not answer."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llm_api.routing.breaker.types import Admission, BreakerPolicy, DeploymentState, Outcome, StateName


@dataclass(slots=True)
class _Deployment:
    open_until: float = 0.0  # 0: closed; in the past: half-open
    probe_at: float = 0.0
    failures: deque[float] = field(default_factory=deque)
    in_flight: dict[str, float] = field(default_factory=dict)


class MemoryBreakerStore:
    """The same rules as the Redis scripts, for one process. Single-threaded (the event loop): no locks."""

    name = "memory"

    def __init__(self, policy: BreakerPolicy, *, clock: Callable[[], float] = time.time) -> None:
        self._policy = policy
        self._clock = clock
        self._deployments: dict[str, _Deployment] = {}

    def _get(self, deployment: str) -> _Deployment:
        found = self._deployments.get(deployment)
        if found is None:
            found = self._deployments[deployment] = _Deployment()
        return found

    async def acquire(self, deployment: str, token: str) -> Admission:
        now = self._clock()
        entry = self._get(deployment)
        probe = False
        if entry.open_until:
            if now < entry.open_until:
                return Admission(deployment, admitted=False, retry_at=entry.open_until, store=self.name)
            if entry.probe_at and now - entry.probe_at < self._policy.probe_timeout_s:
                retry_at = now + self._policy.probe_retry_s
                return Admission(deployment, admitted=False, retry_at=retry_at, store=self.name)
            entry.probe_at = now
            probe = True
        self._purge_in_flight(entry, now)
        entry.in_flight[token] = now
        return Admission(deployment, admitted=True, token=token, probe=probe, store=self.name)

    async def release(
        self, deployment: str, *, token: str, outcome: Outcome, retry_after_s: float | None, probe: bool
    ) -> bool:
        now = self._clock()
        entry = self._get(deployment)
        if token:
            entry.in_flight.pop(token, None)
        if outcome == "neutral":
            if probe:
                entry.probe_at = 0.0
            return False
        if outcome == "success":
            if entry.open_until and now >= entry.open_until:
                entry.open_until = entry.probe_at = 0.0
                entry.failures.clear()
            return False
        retry_after = retry_after_s or 0.0
        cooldown = max(self._policy.cooldown_s, retry_after)
        if entry.open_until:
            if now >= entry.open_until:  # half-open: the probe failed, open again
                entry.open_until, entry.probe_at = now + cooldown, 0.0
                return True
            entry.open_until = max(entry.open_until, now + retry_after)
            return False
        entry.failures.append(now)
        self._purge_failures(entry, now)
        if len(entry.failures) >= self._policy.failures:
            entry.open_until, entry.probe_at = now + cooldown, 0.0
            entry.failures.clear()
            return True
        return False

    async def state(self, deployment: str) -> DeploymentState:
        now = self._clock()
        entry = self._get(deployment)
        self._purge_failures(entry, now)
        self._purge_in_flight(entry, now)
        probe_out = bool(entry.probe_at) and now - entry.probe_at < self._policy.probe_timeout_s
        if not entry.open_until:
            return DeploymentState(
                deployment, "closed", None, len(entry.failures), len(entry.in_flight), source=self.name
            )
        name: StateName = "open" if now < entry.open_until else "half-open"
        return DeploymentState(
            deployment,
            name,
            entry.open_until,
            len(entry.failures),
            len(entry.in_flight),
            probe_in_flight=probe_out,
            source=self.name,
        )

    async def in_flight(self, deployments: Sequence[str]) -> dict[str, int]:
        now = self._clock()
        counts: dict[str, int] = {}
        for deployment in deployments:
            entry = self._get(deployment)
            self._purge_in_flight(entry, now)
            counts[deployment] = len(entry.in_flight)
        return counts

    def _purge_failures(self, entry: _Deployment, now: float) -> None:
        horizon = now - self._policy.window_s
        while entry.failures and entry.failures[0] <= horizon:
            entry.failures.popleft()

    def _purge_in_flight(self, entry: _Deployment, now: float) -> None:
        horizon = now - self._policy.in_flight_ttl_s
        if entry.in_flight and min(entry.in_flight.values()) <= horizon:
            for token in [t for t, started in entry.in_flight.items() if started <= horizon]:
                del entry.in_flight[token]
