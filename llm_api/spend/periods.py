"""Budget periods' windows for the reservation engine: the period's id (part of the Redis key), its start
and its end. The periods themselves, and where each starts, are the store's (`llm_api.store.periods`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from llm_api.store.periods import BUDGET_PERIODS, EPOCH, BudgetPeriod, period_start

PERIODS = cast(tuple[BudgetPeriod, ...], BUDGET_PERIODS)

__all__ = ["EPOCH", "PERIODS", "BudgetPeriod", "PeriodWindow", "period_window"]


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """One period: its id (part of the Redis key), when it started and when it ends (None for total)."""

    ident: str
    start: datetime
    end: datetime | None

    def ttl_s(self, now: datetime) -> int | None:
        """How long the period's spend must be kept: to its end plus a day (None: forever)."""
        if self.end is None:
            return None
        return int((self.end - now).total_seconds()) + 86_400


# The current window of each period: every budgeted request asks, and building one costs a strftime.
_current: dict[BudgetPeriod, PeriodWindow] = {}


def period_window(period: BudgetPeriod, now: datetime | None = None) -> PeriodWindow:
    """The period that contains `now` (UTC; default: the current time)."""
    if now is None:
        now = datetime.now(UTC)
        window = _current.get(period)
        if window is None or not window.start <= now < (window.end or now + timedelta(days=1)):
            window = _current[period] = _period_window(period, now)
        return window
    return _period_window(period, now.astimezone(UTC))


def _period_window(period: BudgetPeriod, now: datetime) -> PeriodWindow:
    start = period_start(period, now)
    if period == "day":
        return PeriodWindow(f"d{start:%Y-%m-%d}", start, start + timedelta(days=1))
    if period == "week":
        return PeriodWindow(f"w{start:%Y-%m-%d}", start, start + timedelta(days=7))
    if period == "month":
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return PeriodWindow(f"m{start:%Y-%m}", start, end)
    return PeriodWindow("total", EPOCH, None)
