"""`KeyAdmin`: the key operations behind the admin API and the CLI, each change announced to every worker."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from llm_api.admin.schemas import KeyCreate, KeyUpdate
from llm_api.errors import NotFound
from llm_api.security.managed_keys import ClientKey, spend_limits
from llm_api.security.ratelimit import RateLimiter
from llm_api.spend import SpendGuard
from llm_api.store.keys import IssuedKey, KeyRecord, KeyRepository
from llm_api.store.ledger import LedgerRepository
from llm_api.store.periods import period_start

log = logging.getLogger("llm_api.admin")

Notify = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's live usage: spend in its budget period, tokens and requests in the last minute."""

    period_spend_usd: Decimal
    minute_tokens: int
    minute_requests: int


# The admin API's source of live usage. The default reads the ledger; the limits engine, which holds the
# exact counters in Redis (reservations included), replaces it with its own (`app.state.key_usage`).
KeyUsageSource = Callable[[KeyRecord], Awaitable[KeyUsage]]


def ledger_usage(ledger: LedgerRepository) -> KeyUsageSource:
    """Live usage from the ledger's written rows (rows still queued in a worker are not counted)."""

    async def usage(key: KeyRecord) -> KeyUsage:
        now = dt.datetime.now(dt.UTC)
        spend = await ledger.spend_since(key.id, period_start(key.budget_period or "total", now))
        recent = await ledger.recent_usage(key.id, now - dt.timedelta(minutes=1))
        return KeyUsage(period_spend_usd=spend, minute_tokens=recent.tokens, minute_requests=recent.requests)

    return usage


def spend_usage(guard: SpendGuard, limiter: RateLimiter, *, fallback: KeyUsageSource) -> KeyUsageSource:
    """Live usage from the reservation engine's counters (reservations in flight included) and the
    request limiter's window (the key's own rpm_limit bucket); from `fallback` (the ledger) while Redis
    cannot answer."""

    async def usage(key: KeyRecord) -> KeyUsage:
        try:
            snapshot = await guard.usage_snapshot(
                key.id, spend_limits(ClientKey(id=key.id, managed=key), guard.default_limits)
            )
            requests = await limiter.requests_in_window(key.id, rpm_limit=key.rpm_limit)
        except Exception as exc:  # Redis down or slow: the ledger still knows what was spent
            log.warning(
                "live key usage unavailable: answering from the ledger",
                extra={"key_id": key.id, "exception_type": type(exc).__name__},
            )
            return await fallback(key)
        return KeyUsage(
            period_spend_usd=snapshot.period_spend_usd,
            minute_tokens=snapshot.minute_tokens,
            minute_requests=requests,
        )

    return usage


async def _nobody(_key_id: str) -> None:
    return None


def _not_found(key_id: str, *, live: bool = False) -> NotFound:
    return NotFound(f"no {'unrevoked ' if live else ''}managed key with id '{key_id}'")


class KeyAdmin:
    """Create, read, change, revoke and rotate managed keys; `notify(key_id)` after every change."""

    def __init__(
        self, repository: KeyRepository, *, notify: Notify | None = None, spend: SpendGuard | None = None
    ) -> None:
        self._repository = repository
        self._notify = notify or _nobody
        self._spend = spend

    async def create(self, spec: KeyCreate) -> IssuedKey:
        fields = spec.changes()
        name = fields.pop("name")
        issued = await self._repository.create(name=name, **fields)
        await self._notify(issued.key.id)  # a secret cached as unknown must start working at once
        if self._spend is not None:
            key = issued.key
            limits = spend_limits(ClientKey(id=key.id, managed=key), self._spend.default_limits)
            await self._spend.start_at_zero(key.id, limits)
        return issued

    async def list(self) -> Sequence[KeyRecord]:
        return await self._repository.list()

    async def get(self, key_id: str) -> KeyRecord:
        key = await self._repository.get(key_id)
        if key is None:
            raise _not_found(key_id)
        return key

    async def update(self, key_id: str, changes: KeyUpdate) -> KeyRecord:
        key = await self._repository.update(key_id, **changes.changes())
        if key is None:
            raise _not_found(key_id, live=True)
        await self._notify(key_id)
        return key

    async def revoke(self, key_id: str) -> None:
        if not await self._repository.revoke(key_id):
            raise _not_found(key_id)
        await self._notify(key_id)

    async def rotate(self, key_id: str, *, grace_s: float) -> IssuedKey:
        issued = await self._repository.rotate(key_id, grace_s=grace_s)
        if issued is None:
            raise _not_found(key_id, live=True)
        await self._notify(key_id)
        return issued
