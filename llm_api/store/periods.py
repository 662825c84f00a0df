"""Budget periods, calendar-aligned in UTC: day, week (from Monday), month, or total (since the epoch)."""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

BudgetPeriod = Literal["day", "week", "month", "total"]
BUDGET_PERIODS: tuple[str, ...] = get_args(BudgetPeriod)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def period_start(period: BudgetPeriod, now: dt.datetime) -> dt.datetime:
    """The start (UTC, inclusive) of the budget period that contains `now`."""
    now = now.astimezone(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight
    if period == "week":
        return midnight - dt.timedelta(days=midnight.weekday())
    if period == "month":
        return midnight.replace(day=1)
    return EPOCH
