"""Cooldowns per deployment, shared by every worker and instance (issue 11).

    closed ──N failed attempts within window_s──► open ──cooldown_s (or a longer Retry-After)──► half-open
      ▲                                                                                            │
      └──────────────── the one probe succeeds ◄──── exactly one request is let through ◄──────────┘
                         (the probe fails: open again)

State lives in Redis (`RedisBreakerStore`: Lua scripts, one round trip per check, keys hash-tagged per
deployment), or in process without Redis (`MemoryBreakerStore`, the same rules). When Redis fails or is
slower than its timeout, the breaker logs once and decides in process until Redis answers again (retried
at most once a second): a Redis outage never fails a request.

The caller decides what counts: `record_failure` only for errors worth a fallback (429, 5xx, overload,
timeouts, connection failures); client errors and cancellations release the request as `neutral`.

In-flight requests are counted per deployment in the same store (Redis: across every worker, so
`least-busy` compares whole-fleet load; a worker that dies mid-request leaves entries that expire after
`in_flight_ttl_s`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from llm_api.routing.breaker.memory import MemoryBreakerStore
from llm_api.routing.breaker.redis_store import RedisBreakerStore
from llm_api.routing.breaker.types import Admission, BreakerPolicy, BreakerStore, DeploymentState, Outcome

__all__ = [
    "Admission",
    "Breaker",
    "BreakerPolicy",
    "DeploymentState",
    "MemoryBreakerStore",
    "Outcome",
    "RedisBreakerStore",
]

log = logging.getLogger("llm_api.routing.breaker")
T = TypeVar("T")


class Breaker:
    """Admits requests to deployments and counts their outcomes."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        redis: Any | None = None,
        key_prefix: str = "llm_api",
        redis_timeout_s: float = 0.25,
        recheck_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._memory = MemoryBreakerStore(policy, clock=clock)
        self._shared: BreakerStore | None = (
            RedisBreakerStore(redis, policy=policy, key_prefix=key_prefix) if redis is not None else None
        )
        self._timeout_s = redis_timeout_s
        self._recheck_interval_s = recheck_interval_s
        self._degraded_until = 0.0
        self._degraded = False

    @property
    def shared(self) -> bool:
        """True while the state is Redis's (configured and answering)."""
        return self._shared is not None and time.monotonic() >= self._degraded_until

    async def acquire(self, deployment: str) -> Admission:
        """May a request go to `deployment` now? Admitted requests count as in flight until released."""
        token = secrets.token_hex(8)
        return await self._call(lambda store: store.acquire(deployment, token))

    async def release(
        self, admission: Admission, outcome: Outcome, *, retry_after_s: float | None = None
    ) -> bool:
        """End an admitted request with its outcome; True if this failure opened the breaker."""
        if not admission.admitted:
            return False
        store = self._shared if admission.store != self._memory.name else None
        return await self._call(
            lambda s: s.release(
                admission.deployment,
                token=admission.token,
                outcome=outcome,
                retry_after_s=retry_after_s,
                probe=admission.probe,
            ),
            store=store or self._memory,
        )

    async def record_failure(self, deployment: str, retry_after_s: float | None = None) -> bool:
        """One failed attempt worth a fallback; True if it opened (or re-opened) the breaker."""
        return await self._call(
            lambda store: store.release(
                deployment, token="", outcome="failure", retry_after_s=retry_after_s, probe=False
            )
        )

    async def record_success(self, deployment: str) -> None:
        """A good answer: closes a half-open breaker."""
        await self._call(
            lambda store: store.release(
                deployment, token="", outcome="success", retry_after_s=None, probe=False
            )
        )

    async def state(self, deployment: str) -> DeploymentState:
        return await self._call(lambda store: store.state(deployment))

    async def snapshot(self, deployments: Sequence[str]) -> list[DeploymentState]:
        """Every named deployment's state, for `GET /admin/deployments`."""
        return [await self.state(deployment) for deployment in deployments]

    async def in_flight(self, deployments: Sequence[str]) -> dict[str, int]:
        """Requests in flight per deployment (for least-busy)."""
        if not deployments:
            return {}
        return await self._call(lambda store: store.in_flight(deployments))

    async def _call(
        self, operation: Callable[[BreakerStore], Awaitable[T]], *, store: BreakerStore | None = None
    ) -> T:
        target = store if store is not None else self._shared
        if target is None or target is self._memory or not self.shared:
            return await operation(self._memory)
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await operation(target)
        except Exception as exc:  # any Redis failure: decide in process, never fail the request
            self._degrade(exc)
            return await operation(self._memory)
        if self._degraded:
            self._degraded = False
            log.info("breaker storage recovered: cooldowns are shared again")
        return result

    def _degrade(self, exc: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning(
                "breaker storage unavailable: deciding in process until Redis answers again",
                extra={"exception_type": type(exc).__name__},
            )
        self._degraded_until = time.monotonic() + self._recheck_interval_s
