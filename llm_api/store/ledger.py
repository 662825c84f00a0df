"""LedgerRepository: the raw usage rows (one per request), their daily rollup, spend, and retention."""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from llm_api.store.tables import nanos_to_usd, usage_daily, usage_events, usd_to_nanos

_COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nusd",
    "unpriced_requests",
)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One request as the ledger records it. No prompt or completion text, by construction."""

    request_id: str
    time: dt.datetime
    key_id: str | None
    endpoint: str
    model_requested: str | None
    model_served: str | None
    provider: str | None
    stream: bool
    status: int
    error_type: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost_usd: Decimal | None
    price_version: str | None
    usage_estimated: bool
    attempts: int
    latency_ms: float
    ttft_ms: float | None
    cache_hit: bool = False  # answered by the response cache: no upstream call, no tokens, 0 USD

    @property
    def failed(self) -> bool:
        return self.status >= 400 or self.error_type is not None

    @property
    def report_model(self) -> str:
        """The model a report files this row under: the one that served it, else the one asked for."""
        return self.model_served or self.model_requested or ""

    def columns(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every (immutable) value, 25x the cost of this.
        values = dict(zip(_ROW_FIELDS, _row_values(self), strict=True))
        cost = values.pop("cost_usd")
        values["cost_nusd"] = usd_to_nanos(cost) if cost is not None else None
        return values


_ROW_FIELDS = tuple(field.name for field in fields(UsageRow))
_row_values = operator.attrgetter(*_ROW_FIELDS)


@dataclass(frozen=True, slots=True)
class RecentUsage:
    requests: int
    tokens: int


def _insert(conn: AsyncConnection | Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The ledger's two writes for one dialect, built once: SQLAlchemy then finds them compiled in its
    cache instead of building and compiling a multi-VALUES upsert for every batch."""

    events: Any
    daily: Any

    @classmethod
    def build(cls, conn: AsyncConnection) -> _Statements:
        events = (
            _insert(conn, usage_events)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(usage_events.c.request_id)
        )
        daily = _insert(conn, usage_daily)
        daily = daily.on_conflict_do_update(
            index_elements=["day", "key_id", "model"],
            set_={name: usage_daily.c[name] + daily.excluded[name] for name in _COUNTERS},
        )
        return cls(events=events, daily=daily)


def _daily_deltas(rows: Iterable[UsageRow]) -> list[dict[str, Any]]:
    totals: dict[tuple[dt.date, str, str], dict[str, Any]] = {}
    for row in rows:
        group = (row.time.astimezone(dt.UTC).date(), row.key_id or "", row.report_model)
        entry = totals.setdefault(
            group,
            {"day": group[0], "key_id": group[1], "model": group[2], **dict.fromkeys(_COUNTERS, 0)},
        )
        entry["requests"] += 1
        entry["errors"] += int(row.failed)
        entry["input_tokens"] += row.input_tokens or 0
        entry["output_tokens"] += row.output_tokens or 0
        entry["cache_read_tokens"] += row.cache_read_tokens or 0
        entry["cache_write_tokens"] += row.cache_write_tokens or 0
        if row.cost_usd is None:
            entry["unpriced_requests"] += int(row.input_tokens is not None)
        else:
            entry["cost_nusd"] += usd_to_nanos(row.cost_usd)
    # A fixed order, so that two writers upserting the same groups lock them in the same order.
    return [totals[group] for group in sorted(totals)]


class LedgerRepository:
    """Writes usage rows (idempotent on request id) and answers the spend questions the limits ask."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statements: _Statements | None = None

    async def insert(self, rows: Sequence[UsageRow]) -> int:
        """Insert the rows not already recorded and add them to the daily rollup, in one transaction.

        Rows whose request id is already in the ledger are skipped (ON CONFLICT DO NOTHING) and not
        counted again: a batch retried after a lost commit acknowledgement is harmless.
        """
        rows = list({row.request_id: row for row in reversed(rows)}.values())[::-1]  # first of each id
        if not rows:
            return 0
        async with self._engine.begin() as conn:
            statements = self._statements
            if statements is None:
                statements = self._statements = _Statements.build(conn)
            result = await conn.execute(statements.events, [row.columns() for row in rows])
            inserted = set(result.scalars().all())
            fresh = [row for row in rows if row.request_id in inserted]
            deltas = _daily_deltas(fresh)
            if deltas:
                await conn.execute(statements.daily, deltas)
        return len(fresh)

    async def spend_since(self, key_id: str, since: dt.datetime) -> Decimal:
        """The recorded spend of `key_id` from `since` on (USD): whole days from the rollup, a partial
        first day from the raw rows. Used to rebuild a key's period spend after Redis lost it."""
        since = since.astimezone(dt.UTC)
        first_day = since.date()
        midnight = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
        whole_from = first_day if since == midnight else first_day + dt.timedelta(days=1)
        async with self._engine.connect() as conn:
            total = (
                await conn.execute(
                    select(func.coalesce(func.sum(usage_daily.c.cost_nusd), 0)).where(
                        usage_daily.c.key_id == key_id, usage_daily.c.day >= whole_from
                    )
                )
            ).scalar_one()
            if since != midnight:
                total += (
                    await conn.execute(
                        select(func.coalesce(func.sum(usage_events.c.cost_nusd), 0)).where(
                            usage_events.c.key_id == key_id,
                            usage_events.c.time >= since,
                            usage_events.c.time < midnight + dt.timedelta(days=1),
                        )
                    )
                ).scalar_one()
        return nanos_to_usd(int(total))

    async def recent_usage(self, key_id: str, since: dt.datetime) -> RecentUsage:
        """Requests and tokens of `key_id` recorded since `since` (an index range on the raw rows)."""
        tokens = func.coalesce(usage_events.c.input_tokens, 0) + func.coalesce(
            usage_events.c.output_tokens, 0
        )
        query = select(func.count(), func.coalesce(func.sum(tokens), 0)).where(
            and_(usage_events.c.key_id == key_id, usage_events.c.time >= since)
        )
        async with self._engine.connect() as conn:
            requests, total = (await conn.execute(query)).one()
        return RecentUsage(requests=int(requests), tokens=int(total))

    async def count(self, **where: Any) -> int:
        """How many raw rows match the given column values (for operators and tests)."""
        query = select(func.count()).select_from(usage_events)
        for name, value in where.items():
            query = query.where(usage_events.c[name] == value)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def rows(self, *, key_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The newest raw rows, as column mappings (cost_usd as Decimal)."""
        query = select(usage_events).order_by(usage_events.c.id.desc()).limit(limit)
        if key_id is not None:
            query = query.where(usage_events.c.key_id == key_id)
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).mappings().all()
        rows = []
        for row in found:
            values = dict(row)
            cost = values.pop("cost_nusd")
            values["cost_usd"] = nanos_to_usd(cost) if cost is not None else None
            rows.append(values)
        return rows

    async def prune(self, before: dt.datetime) -> int:
        """Delete raw rows older than `before` (USAGE_RETENTION_DAYS); the daily rollup is kept."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(usage_events).where(usage_events.c.time < before))
        return int(result.rowcount)
