"""One batch of usage rows written through the database driver itself: the raw rows (new request ids
only) and their daily rollup, in one transaction.

Why not SQLAlchemy's execution: the batch is written from the worker's event-loop thread, and SQLAlchemy's
multi-row upsert (parameter processing per row and column, the insertmanyvalues rendering, the result
machinery, the driver bridging) held that thread ~1.2 ms per 32-row batch, on one request in every 32 at
c=1 (bench: every 32nd request of a sequential load came back 1.2 ms late, most of the c=1 p99). The same
two statements sent as plain SQL through aiosqlite or asyncpg take ~0.3 ms. The statements are written out
from `tables.py`'s columns, so the schema stays where Alembic and the rest of the store read it; values are
converted as the column types would (`UTCDateTime`, SQLite's date and datetime storage formats).

On PostgreSQL the batch is one statement, one round trip instead of four (BEGIN, INSERT, the rollup's
executemany, COMMIT): the rows' insert in a CTE, and the rollup of the rows it kept, from per-row deltas
worked out here (`row_delta`, the same as SQLite's) and summed per group by the database.
"""

from __future__ import annotations

import datetime as dt
import operator
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Date, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_api.store.tables import usage_daily, usage_events, usd_to_nanos

if TYPE_CHECKING:
    from llm_api.store.ledger import UsageRow

# The rollup's counters, in the order `row_delta` and `sum_deltas` give them.
COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_nusd",
    "unpriced_requests",
)
DailyDelta = tuple[dt.date, str, str, list[int]]  # day, key id ("" for none), model, COUNTERS
Group = tuple[dt.date, str, str]  # a rollup row: day (UTC), key id ("" for none), model


class PreparedRow(NamedTuple):
    """One row as a batch writes it: its usage_events values (in `event_columns` order, converted as the
    columns store them) and what it adds to its rollup group (COUNTERS)."""

    values: tuple[Any, ...]
    group: Group
    counters: tuple[int, ...]


def row_delta(row: UsageRow, cost_nusd: int | None) -> tuple[Group, tuple[int, ...]]:
    """The rollup group of `row` and what it adds there (`cost_nusd`: its cost in nano-dollars)."""
    group = (row.time.astimezone(dt.UTC).date(), row.key_id or "", row.report_model)
    unpriced = int(row.input_tokens is not None) if cost_nusd is None else 0
    return group, (
        1,
        int(row.failed),
        row.input_tokens or 0,
        row.output_tokens or 0,
        row.cache_read_tokens or 0,
        row.cache_write_tokens or 0,
        cost_nusd or 0,
        unpriced,
    )


def sum_deltas(deltas: Iterable[tuple[Group, tuple[int, ...]]]) -> list[DailyDelta]:
    """The rollup's additions per group, in a fixed order (so that two writers upserting the same groups
    lock them in the same order)."""
    by_group: dict[Group, list[tuple[int, ...]]] = {}
    for group, counters in deltas:
        members = by_group.get(group)
        if members is None:
            by_group[group] = [counters]
        else:
            members.append(counters)
    return [
        (*group, [sum(column) for column in zip(*by_group[group], strict=True)]) for group in sorted(by_group)
    ]


def event_columns(row_fields: Sequence[str]) -> tuple[str, ...]:
    """The usage_events columns a row's fields go to (its USD cost is stored in nano-dollars)."""
    columns = tuple("cost_nusd" if name == "cost_usd" else name for name in row_fields)
    unknown = set(columns) - set(usage_events.c.keys())
    if unknown:
        raise ValueError(f"usage rows have fields usage_events lacks: {sorted(unknown)}")
    return columns


class _Sql:
    """The statements for one placeholder style ("?" for SQLite, "$n" for PostgreSQL)."""

    def __init__(self, numbered: bool, columns: Sequence[str]) -> None:
        self._numbered = numbered
        self._columns = tuple(columns)
        self._events: dict[int, str] = {}  # by batch size
        self._postgres_batches: dict[int, str] = {}
        # Only the tables' own names go into the text; every value is a parameter.
        table, key = usage_daily.name, ", ".join(c.name for c in usage_daily.primary_key.columns)
        additions = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in COUNTERS)
        marks = self._marks(0, 3 + len(COUNTERS))
        self.daily = (
            f"INSERT INTO {table} ({key}, {', '.join(COUNTERS)}) VALUES ({marks})"  # noqa: S608
            f" ON CONFLICT ({key}) DO UPDATE SET {additions}"
        )

    def _marks(self, start: int, count: int) -> str:
        if self._numbered:
            return ", ".join(f"${start + i + 1}" for i in range(count))
        return ", ".join("?" * count)

    def postgres_batch(self, rows: int) -> str:
        """PostgreSQL's whole batch in one statement (one round trip, atomic without a transaction): the
        raw rows, then the rollup of those the insert kept (their deltas come as arrays: request id, day,
        key id, model, then one per counter), summed per group in a fixed order; it returns how many rows
        were new, or nothing when none was."""
        sql = self._postgres_batches.get(rows)
        if sql is None:
            table, key = usage_daily.name, ", ".join(c.name for c in usage_daily.primary_key.columns)
            first = rows * len(self._columns) + 1
            arrays = ", ".join(
                f"${first + i}::{kind}[]"
                for i, kind in enumerate(("text", "date", "text", "text", *("bigint",) * len(COUNTERS)))
            )
            names = ", ".join(("request_id", "day", "key_id", "model", *COUNTERS))
            sums = ", ".join(f"sum(d.{name})" for name in COUNTERS)
            additions = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in COUNTERS)
            sql = self._postgres_batches[rows] = (
                f"WITH kept AS ({self.events(rows)}),"  # noqa: S608 - the tables' own names; values are parameters
                f" d AS (SELECT * FROM unnest({arrays}) AS d({names}))"
                f" INSERT INTO {table} ({key}, {', '.join(COUNTERS)})"
                f" SELECT d.day, d.key_id, d.model, {sums} FROM d JOIN kept USING (request_id)"
                f" GROUP BY d.day, d.key_id, d.model ORDER BY d.day, d.key_id, d.model"
                f" ON CONFLICT ({key}) DO UPDATE SET {additions}"
                " RETURNING (SELECT count(*) FROM kept)"
            )
        return sql

    def events(self, rows: int) -> str:
        sql = self._events.get(rows)
        if sql is None:
            width = len(self._columns)
            values = ", ".join(f"({self._marks(i * width, width)})" for i in range(rows))
            sql = self._events[rows] = (
                f"INSERT INTO {usage_events.name} ({', '.join(self._columns)}) VALUES {values}"  # noqa: S608
                " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
            )
        return sql


def _same(value: Any) -> Any:
    return value


def _utc_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(dt.UTC).replace(tzinfo=None)


class LedgerBatchWriter:
    """Writes batches of usage rows on an engine's dialect ("sqlite" or "postgresql")."""

    def __init__(self, dialect: Dialect, row_fields: Sequence[str]) -> None:
        self._postgres = dialect.name == "postgresql"
        columns = event_columns(row_fields)
        self._sql = _Sql(self._postgres, columns)
        self._values_of: Callable[[UsageRow], tuple[Any, ...]] = operator.attrgetter(*row_fields)
        self._time_at = columns.index("time")
        self._cost_at = columns.index("cost_nusd")
        self._datetime_out: Callable[[dt.datetime], Any] = _utc_naive
        self._date_out: Callable[[dt.date], Any] = _same
        if not self._postgres:
            datetime_text, self._date_out = _sqlite_text(dialect)
            self._datetime_out = lambda value: datetime_text(_utc_naive(value))

    def prepare(self, row: UsageRow) -> PreparedRow:
        """`row` as a batch writes it (~8 us: the ledger writer prepares each row as it joins its batch,
        not all of them at once when the batch is written, which held the event loop ~0.3 ms per 32)."""
        values = list(self._values_of(row))
        values[self._time_at] = self._datetime_out(values[self._time_at])
        cost = values[self._cost_at]
        cost_nusd = values[self._cost_at] = usd_to_nanos(cost) if cost is not None else None
        return PreparedRow(tuple(values), *row_delta(row, cost_nusd))

    def _prepared(
        self, rows: Sequence[UsageRow], prepared: Sequence[PreparedRow] | None
    ) -> Sequence[PreparedRow]:
        return prepared if prepared is not None else [self.prepare(row) for row in rows]

    @staticmethod
    def _flat(prepared: Sequence[PreparedRow]) -> list[Any]:
        flat: list[Any] = []
        for row in prepared:
            flat.extend(row.values)
        return flat

    async def write(
        self, conn: AsyncConnection, rows: Sequence[UsageRow], prepared: Sequence[PreparedRow] | None = None
    ) -> int:
        """Insert `rows` (distinct request ids; `prepared`, theirs if already prepared) on `conn` (held
        across batches, or from the pool), and roll up the ones not already recorded; returns how many
        were new. The driver's own errors propagate, after the connection is invalidated."""
        ready = self._prepared(rows, prepared)
        flat = self._flat(ready)
        driver: Any = (await conn.get_raw_connection()).driver_connection
        try:
            if self._postgres:
                groups = [row.group for row in ready]
                deltas = [
                    [row.request_id for row in rows],
                    *([group[i] for group in groups] for i in range(3)),
                    *([row.counters[i] for row in ready] for i in range(len(COUNTERS))),
                ]
                records = await driver.fetch(self._sql.postgres_batch(len(rows)), *flat, *deltas)
                return int(records[0][0]) if records else 0
            # sqlite3 opens the transaction itself before the INSERT (its default isolation level).
            try:
                inserted = {
                    record[0] for record in await driver.execute_fetchall(self._sql.events(len(rows)), flat)
                }
                daily = self._daily_values(rows, ready, inserted)
                if daily:
                    await driver.executemany(self._sql.daily, daily)
                await driver.commit()
            except BaseException:
                await driver.rollback()
                raise
        except Exception:
            # The driver's state is unknown (a lost connection, a refused row): a fresh one next time.
            await conn.invalidate()
            raise
        return len(inserted)

    def sqlite_batch(
        self, rows: Sequence[UsageRow], prepared: Sequence[PreparedRow] | None = None
    ) -> Callable[[sqlite3.Connection], int]:
        """`write` for a plain sqlite3 connection on its own thread (`SqliteThread`, which commits): the
        values and the rollup are worked out here, on the caller's thread, so that the other one only
        runs SQLite (a thread running Python holds the GIL the event loop needs)."""
        ready = self._prepared(rows, prepared)
        sql, flat = self._sql.events(len(rows)), self._flat(ready)
        every_row_daily = self._daily_values(rows, ready, None)

        def write(connection: sqlite3.Connection) -> int:
            inserted = {record[0] for record in connection.execute(sql, flat).fetchall()}
            # Rows already recorded (a batch retried after a lost commit) are not rolled up again.
            daily = (
                every_row_daily if len(inserted) == len(rows) else self._daily_values(rows, ready, inserted)
            )
            if daily:
                connection.executemany(self._sql.daily, daily)
            return len(inserted)

        return write

    def _daily_values(
        self, rows: Sequence[UsageRow], prepared: Sequence[PreparedRow], inserted: set[str] | None
    ) -> list[list[Any]]:
        """The rollup's upserts for the `inserted` rows (None: all of them)."""
        deltas = sum_deltas(
            (ready.group, ready.counters)
            for row, ready in zip(rows, prepared, strict=True)
            if inserted is None or row.request_id in inserted
        )
        date_out = self._date_out
        return [[date_out(day), key_id, model, *counters] for day, key_id, model, counters in deltas]


def _sqlite_text(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """SQLite's DATETIME and DATE storage strings, as SQLAlchemy writes (and later compares) them."""
    datetime_text = DateTime().dialect_impl(dialect).bind_processor(dialect)
    date_text = Date().dialect_impl(dialect).bind_processor(dialect)
    assert datetime_text is not None and date_text is not None
    return datetime_text, date_text
