"""The reservation engine's values: a key's limits, a reservation, and what the scripts answer."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from limits import parse_many

from llm_api.spend.periods import PERIODS, BudgetPeriod
from llm_api.spend.prices import Price

# The store's LedgerRepository.spend_since(key_id, since): USD spent by a key since a time.
SpendSource = Callable[[str, datetime], Awaitable[Decimal]]

MINUTE_S = 60


@dataclass(frozen=True, slots=True)
class TokenWindow:
    limit: int
    window_s: int


def parse_token_limit(text: str | None, *, setting: str = "TOKEN_LIMIT") -> tuple[TokenWindow, ...]:
    """``100000/minute`` (or several, ``;``-separated) as token windows; empty/None means no limit."""
    if not text or not text.strip():
        return ()
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{setting}: {text!r} is not a valid token limit (expected e.g. '100000/minute')")
    return tuple(TokenWindow(item.amount, item.get_expiry()) for item in items)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What applies to one key: requests per minute (charged by the RateLimiter), token windows, budget.

    Build it with `KeyLimits.of(...)` from a managed key, or from the settings' defaults
    (`SpendGuard.default_limits`).
    """

    rpm: int | None = None
    tokens: tuple[TokenWindow, ...] = ()
    budget_usd: Decimal | None = None
    budget_period: BudgetPeriod = "month"

    @classmethod
    def of(
        cls,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_usd: Decimal | float | str | None = None,
        budget_period: str = "month",
    ) -> KeyLimits:
        if budget_period not in PERIODS:
            raise ValueError(f"budget_period must be one of {', '.join(PERIODS)}")
        period: BudgetPeriod = budget_period
        return cls(
            rpm=rpm,
            tokens=(TokenWindow(tpm, MINUTE_S),) if tpm else (),
            budget_usd=None if budget_usd is None else Decimal(str(budget_usd)),
            budget_period=period,
        )

    @property
    def tpm(self) -> int | None:
        return next((w.limit for w in self.tokens if w.window_s == MINUTE_S), None)

    @property
    def budgeted(self) -> bool:
        return self.budget_usd is not None


class ReserveStatus(enum.IntEnum):
    OVER_TOKENS = 0
    RESERVED = 1
    OVER_BUDGET = 2
    REBUILD = 3
    TOO_LARGE = 4


@dataclass(frozen=True, slots=True)
class ReserveResult:
    """`limit`/`remaining`/`reset_ms` describe the tightest token window (limit -1: none applies)."""

    status: ReserveStatus
    limit: int
    remaining: int
    reset_ms: int
    committed_nano: int

    @classmethod
    def from_reply(cls, reply: list[object]) -> ReserveResult:
        status, limit, remaining, reset_ms, committed = (int(v or 0) for v in reply)  # type: ignore[call-overload]
        return cls(ReserveStatus(status), limit, remaining, reset_ms, committed)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A request's worst case, held until `settle` or `release` (or until it expires by itself)."""

    id: str
    key_id: str
    model: str
    tokens: int
    cost_usd: Decimal | None
    price: Price | None
    limits: KeyLimits
    period: str | None  # the budget period's id, when the key has a budget
    period_ttl_s: int | None
    shared: bool  # made in Redis (False: in this worker's memory)
    # A routed request's targets and their prices (None: one model, priced by `price`): the target that
    # served is billed at its own price; `price` (the worst case's) is the dearest of them.
    target_prices: Mapping[str, Price | None] | None = None


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """Live usage for the admin API: settled plus held (reserved, in flight)."""

    period_spend_usd: Decimal
    minute_tokens: int
    minute_requests: int | None
