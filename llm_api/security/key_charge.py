"""One request's hit on its key's rate limit, charged exactly once: with the budget reservation in one
Redis round trip where it can be, else alone.

The chat endpoints check the key's rate limit before the body, but the reservation needs the parsed body.
`KeyCharge.first()` keeps the order that clients see — whatever is wrong with the request after the key,
an exhausted rate limit answers first (429) — while the hit itself travels with the reservation
(`SpendGuard.reserve(charge=...)`): any refusal before the reservation charges it alone, then propagates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from llm_api.errors import RateLimited
from llm_api.security.ratelimit import RateLimiter, SharedHit


class KeyCharge:
    """The rate-limit hit of one request by `key_id` (`rpm_limit`: a managed key's own limit)."""

    def __init__(
        self,
        limiter: RateLimiter,
        key_id: str,
        *,
        rpm_limit: int | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._limiter = limiter
        self._key_id = key_id
        self._rpm_limit = rpm_limit
        self._on_refused = on_refused
        self._pending = True
        self._sent: SharedHit | None = None

    @property
    def pending(self) -> bool:
        """Not charged yet (neither alone nor handed to another call)."""
        return self._pending

    @property
    def sent(self) -> SharedHit | None:
        """The hit handed out by `take_shared` and not finished yet."""
        return self._sent

    async def run(self) -> None:
        """Charge it alone (once); RateLimited when the key's limit is spent."""
        if not self._pending:
            return
        self._pending = False
        await self._refusing(self._limiter.check_key(self._key_id, rpm_limit=self._rpm_limit))

    def take_shared(self) -> SharedHit | None:
        """The hit as a script call for the caller to send with its own (then `finish` or `lost`), or None:
        charge it with `run`."""
        if not self._pending:
            return None
        hit = self._limiter.shared_hit(self._key_id, rpm_limit=self._rpm_limit)
        if hit is not None:
            self._pending = False
            self._sent = hit
        return hit

    async def finish(self, reply: Any) -> None:
        """The reply to the hit sent with `take_shared`: headers, or RateLimited."""
        hit, self._sent = self._sent, None
        assert hit is not None
        await self._refusing(self._limiter.finish_shared_hit(hit, reply, self._key_id))

    async def lost(self) -> None:
        """The call that carried the hit found Redis down: the limiter's outage policy for it."""
        hit, self._sent = self._sent, None
        if hit is not None:
            await self._refusing(self._limiter.shared_hit_lost(hit, self._key_id))

    @asynccontextmanager
    async def first(self) -> AsyncIterator[KeyCharge]:
        """Inside, any refusal is answered after the rate limit: the hit is charged alone before it
        propagates (an exhausted limit's 429 replaces it). Leaving normally, a hit nobody took is charged."""
        try:
            yield self
        except Exception:
            await self.run()
            raise
        await self.run()

    async def _refusing(self, check: Any) -> None:
        try:
            await check
        except RateLimited:
            if self._on_refused is not None:
                self._on_refused()
            raise
