"""Rebuild a budget period's spend in Redis from the usage ledger, once, under a lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from llm_api.errors import BudgetUnavailable
from llm_api.spend.periods import PeriodWindow
from llm_api.spend.prices import to_nano_usd
from llm_api.spend.types import SpendSource

log = logging.getLogger("llm_api.spend")

REBUILD_LOCK_MS = 10_000


async def rebuild_period(
    *,
    client: Any,
    call: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
    script: Any,
    spend_source: SpendSource | None,
    key_id: str,
    period: PeriodWindow,
    budget_key: str,
    timeout_s: float,
) -> bool:
    """Take the lock and set the period's spend from the ledger; False if another worker holds the lock.

    Raises BudgetUnavailable if the ledger cannot be read: a fresh, empty budget would lose money.
    """
    lock = f"{budget_key}:rebuild"
    token = uuid.uuid4().hex
    if not await call(lambda: client.set(lock, token, nx=True, px=REBUILD_LOCK_MS)):
        return False
    try:
        spent = Decimal(0)
        if spend_source is not None:
            try:
                async with asyncio.timeout(timeout_s):
                    spent = await spend_source(key_id, period.start)
            except Exception as exc:
                log.warning(
                    "budget spend could not be read from the ledger: budgeted requests wait",
                    extra={"key_id": key_id, "exception_type": type(exc).__name__},
                )
                raise BudgetUnavailable(
                    "budgets are temporarily unavailable; try again shortly", headers={"Retry-After": "1"}
                ) from None
        ttl = period.ttl_s(datetime.now(UTC)) or -1
        await call(lambda: script(keys=[budget_key], args=[to_nano_usd(spent), ttl]))
        log.info(
            "budget spend rebuilt from the ledger"
            if spend_source is not None
            else "budget spend starts at zero (no ledger configured to rebuild it from)",
            extra={"key_id": key_id, "period": period.ident},
        )
        return True
    finally:
        with contextlib.suppress(Exception):  # else the lock expires by itself
            await call(lambda: client.delete(lock))
