"""UsageRepository: usage reports, from the daily rollup only (never the raw rows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_api.store.tables import nanos_to_usd, usage_daily

GroupBy = Literal["key", "model", "day"]
GROUP_BY: tuple[str, ...] = get_args(GroupBy)
_COLUMN = {"key": usage_daily.c.key_id, "model": usage_daily.c.model, "day": usage_daily.c.day}


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """One group of a report; the grouping fields not asked for are None."""

    key_id: str | None
    model: str | None
    day: dt.date | None
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


class UsageRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def report(
        self,
        *,
        key_id: str | None = None,
        model: str | None = None,
        first_day: dt.date | None = None,
        last_day: dt.date | None = None,
        group_by: Sequence[GroupBy] = (),
    ) -> list[UsageTotals]:
        """Totals per group over the days `first_day`..`last_day` (both inclusive, UTC)."""
        groups = [_COLUMN[name] for name in dict.fromkeys(group_by)]
        query = select(
            *groups,
            func.sum(usage_daily.c.requests),
            func.sum(usage_daily.c.errors),
            func.sum(usage_daily.c.input_tokens),
            func.sum(usage_daily.c.output_tokens),
            func.sum(usage_daily.c.cost_nusd),
        )
        if key_id is not None:
            query = query.where(usage_daily.c.key_id == key_id)
        if model is not None:
            query = query.where(usage_daily.c.model == model)
        if first_day is not None:
            query = query.where(usage_daily.c.day >= first_day)
        if last_day is not None:
            query = query.where(usage_daily.c.day <= last_day)
        if groups:
            query = query.group_by(*groups).order_by(*groups)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        names = list(dict.fromkeys(group_by))
        totals = []
        for row in rows:
            values = dict(zip(names, row[: len(names)], strict=True))
            requests, errors, input_tokens, output_tokens, cost = row[len(names) :]
            if requests is None:  # no rows: the one ungrouped total is all zeros
                requests = errors = input_tokens = output_tokens = cost = 0
            day = values.get("day")
            totals.append(
                UsageTotals(
                    key_id=(values.get("key") or None) if "key" in values else None,
                    model=(values.get("model") or None) if "model" in values else None,
                    day=day if isinstance(day, dt.date) else None,
                    requests=int(requests),
                    errors=int(errors),
                    input_tokens=int(input_tokens),
                    output_tokens=int(output_tokens),
                    cost_usd=nanos_to_usd(int(cost)),
                )
            )
        return totals
