"""LedgerRepository: the raw usage rows (one per request), their daily rollup, spend, and retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_api.store.database import SQLITE_BUSY_TIMEOUT_S, sqlite_path
from llm_api.store.held_connection import HeldConnection
from llm_api.store.ledger_batch import LedgerBatchWriter, PreparedRow
from llm_api.store.sqlite_thread import SqliteThread
from llm_api.store.tables import nanos_to_usd, usage_daily, usage_events


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


_ROW_FIELDS = tuple(field.name for field in fields(UsageRow))


@dataclass(frozen=True, slots=True)
class RecentUsage:
    requests: int
    tokens: int


class LedgerRepository:
    """Writes usage rows (idempotent on request id) and answers the spend questions the limits ask."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._batches = LedgerBatchWriter(engine.dialect, _ROW_FIELDS)
        # A SQLite file gets its batches written on a connection and thread of their own (one hop per
        # batch, sqlite_thread.py); an in-memory database only exists on the engine's connection.
        path = sqlite_path(engine.url.render_as_string()) if engine.dialect.name == "sqlite" else None
        self._sqlite = SqliteThread(path, busy_timeout_s=SQLITE_BUSY_TIMEOUT_S) if path is not None else None
        # PostgreSQL's batches go through one connection kept across them (held_connection.py).
        self._held = HeldConnection(engine) if engine.dialect.name == "postgresql" else None

    def prepare(self, row: UsageRow) -> PreparedRow:
        """What `insert` stores for `row`, worked out ahead (pass it along with the row to `insert`)."""
        return self._batches.prepare(row)

    async def insert(self, rows: Sequence[UsageRow], prepared: Sequence[PreparedRow] | None = None) -> int:
        """Insert the rows not already recorded and add them to the daily rollup, in one transaction.
        `prepared`, when given, holds the rows' `prepare`, in the same order.

        Rows whose request id is already in the ledger are skipped (ON CONFLICT DO NOTHING) and not
        counted again: a batch retried after a lost commit acknowledgement is harmless.
        """
        if prepared is not None and len(prepared) != len(rows):
            raise ValueError("prepared must hold one entry per row")
        first = sorted({row.request_id: i for i, row in reversed(list(enumerate(rows)))}.values())
        if not first:
            return 0
        if len(first) < len(rows):  # the first of each request id
            rows = [rows[i] for i in first]
            prepared = None if prepared is None else [prepared[i] for i in first]
        if self._sqlite is not None:
            return await self._sqlite.run(self._batches.sqlite_batch(rows, prepared))
        if self._held is not None:
            return await self._held.run(lambda conn: self._batches.write(conn, rows, prepared))
        async with self._engine.connect() as conn:
            return await self._batches.write(conn, rows, prepared)

    async def aclose(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.aclose()
        if self._held is not None:
            await self._held.aclose()

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
