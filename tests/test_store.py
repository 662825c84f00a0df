"""The store against real SQLite and real PostgreSQL: migrations (schema = tables.py, idempotent, raced by
several processes under the lock), the key repository, the ledger (idempotent, rollup, spend, retention)
and the usage reports."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from llm_api.store.migrate import head_revision, migrate
from llm_api.store.periods import period_start
from llm_api.store.store import Store
from llm_api.store.tables import metadata, usage_events
from llm_api.store.writer import LedgerWriter
from tests.pg import admin_sql, postgres_database
from tests.support import ROOT, async_wait_until

UTC = dt.UTC


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/nested/dir/llm_api.db"
    else:
        with postgres_database() as (url, _):
            yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.aclose()


def _diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def test_migrations_build_the_schema_of_tables_py(database_url: str) -> None:
    assert await migrate(database_url) is True
    assert await migrate(database_url) is False  # at head: nothing to do
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert await conn.run_sync(_revision) == head_revision()
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"api_keys", "api_key_secrets", "usage_events", "usage_daily", "alembic_version"} <= tables
    finally:
        await store.aclose()


async def test_a_ledger_from_revision_0001_keeps_its_rows_as_upstream_answers(database_url: str) -> None:
    """An operator upgrading a database that already holds usage: revision 0002 adds `cache_hit`, false
    for every earlier row, and new rows say whether the cache answered them."""
    from alembic import command

    from llm_api.store.database import create_engine
    from llm_api.store.migrate import alembic_config

    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            # Only the columns revision 0001 has (cache_hit has no client-side default: it is left out).
            await conn.execute(
                usage_events.insert().values(
                    request_id="req-old",
                    time=dt.datetime(2026, 11, 30, tzinfo=UTC),
                    endpoint="/v1/chat",
                    stream=False,
                    status=200,
                    usage_estimated=False,
                    attempts=1,
                    latency_ms=3.5,
                )
            )
    finally:
        await engine.dispose()
    assert await migrate(database_url) is True
    store = await Store.open(database_url)
    try:
        hit = _row("key-a", when=dt.datetime.now(UTC), cost="0", request_id="req-hit", cache_hit=True)
        await store.ledger.insert([hit])
        rows = {row["request_id"]: row for row in await store.ledger.rows()}
        assert (rows["req-old"]["cache_hit"], rows["req-hit"]["cache_hit"]) == (False, True)
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.aclose()


def test_concurrent_migrations_take_the_lock(database_url: str) -> None:
    """Three processes migrate the same fresh database at once: exactly one applies the revisions."""
    script = (
        "import asyncio, sys; from llm_api.store.migrate import migrate; "
        "print(asyncio.run(migrate(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err.decode()[-2000:] for _, err in outputs]
    assert sorted(out.decode().strip() for out, _ in outputs) == ["False", "False", "True"]


async def test_key_lifecycle(store: Store) -> None:
    issued = await store.keys.create(
        name="team-a", rpm_limit=5, budget_usd=Decimal("12.5"), models=["claude-*"], metadata={"team": "a"}
    )
    key = issued.key
    assert key.id.startswith("key_") and issued.secret.startswith("sk-llm-")
    assert (key.rpm_limit, key.budget_usd, key.budget_period, key.models) == (
        5,
        Decimal("12.5"),
        "month",
        ("claude-*",),
    )
    match = await store.keys.find_by_secret(issued.secret)
    assert match is not None and match.key.id == key.id and match.secret_expires_at is None
    assert await store.keys.find_by_secret(issued.secret + "x") is None

    updated = await store.keys.update(key.id, rpm_limit=None, models=None, name="team-b")
    assert updated is not None and (updated.rpm_limit, updated.models, updated.name) == (None, None, "team-b")
    assert await store.keys.update("key_missing", name="x") is None

    rotated = await store.keys.rotate(key.id, grace_s=60)
    assert rotated is not None
    old = await store.keys.find_by_secret(issued.secret)
    assert old is not None and old.secret_expires_at is not None
    assert old.secret_expires_at > dt.datetime.now(UTC) + dt.timedelta(seconds=50)
    again = await store.keys.rotate(key.id, grace_s=0)
    assert again is not None
    assert await store.keys.find_by_secret(issued.secret) is None
    assert await store.keys.find_by_secret(rotated.secret) is None
    assert await store.keys.find_by_secret(again.secret) is not None

    assert await store.keys.revoke(key.id) is True
    assert await store.keys.find_by_secret(again.secret) is None
    revoked = await store.keys.get(key.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert await store.keys.rotate(key.id) is None
    assert await store.keys.revoke("key_missing") is False
    assert [k.id for k in await store.keys.list()] == [key.id]


def _row(
    key_id: str | None, *, when: dt.datetime, cost: str | None = "0.001", status: int = 200, **fields: object
):
    from llm_api.store.ledger import UsageRow

    values: dict[str, object] = {
        "request_id": uuid.uuid4().hex,
        "time": when,
        "key_id": key_id,
        "endpoint": "/v1/chat",
        "model_requested": "claude-opus-4-5",
        "model_served": "claude-opus-4-5",
        "provider": "anthropic",
        "stream": False,
        "status": status,
        "error_type": None if status < 400 else "upstream_error",
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": Decimal(cost) if cost is not None else None,
        "price_version": "test",
        "usage_estimated": False,
        "attempts": 1,
        "latency_ms": 12.5,
        "ttft_ms": None,
    }
    values.update(fields)
    return UsageRow(**values)  # type: ignore[arg-type]


async def test_ledger_is_idempotent_and_rolls_up(store: Store) -> None:
    now = dt.datetime.now(UTC)
    yesterday = now - dt.timedelta(days=1)
    rows = [
        _row("key_a", when=now),
        _row("key_a", when=now, model_served="gpt-4o", cost="0.5"),
        _row("key_a", when=yesterday, cost="0.25"),
        _row("key_a", when=now, status=502, input_tokens=None, output_tokens=None, cost=None),
        _row("key_b", when=now, cost=None),
        _row(None, when=now, status=401, input_tokens=None, output_tokens=None, cost=None),
    ]
    assert await store.ledger.insert(rows) == 6
    assert await store.ledger.insert([*rows[:3], rows[0]]) == 0  # a retried batch counts nothing twice
    assert await store.ledger.count() == 6

    report = await store.usage.report(group_by=["key"])
    by_key = {r.key_id: r for r in report}
    assert set(by_key) == {"key_a", "key_b", None}
    a = by_key["key_a"]
    assert (a.requests, a.errors, a.input_tokens, a.output_tokens, a.cost_usd) == (
        4,
        1,
        30,
        15,
        Decimal("0.751"),
    )
    assert sum(r.requests for r in report) == await store.ledger.count()

    models = await store.usage.report(key_id="key_a", group_by=["model", "day"])
    assert {(r.model, r.day, r.requests) for r in models} == {
        ("claude-opus-4-5", now.date(), 2),
        ("gpt-4o", now.date(), 1),
        ("claude-opus-4-5", yesterday.date(), 1),
    }
    today = await store.usage.report(key_id="key_a", first_day=now.date(), last_day=now.date())
    assert [(r.requests, r.cost_usd) for r in today] == [(3, Decimal("0.501"))]
    [nothing] = await store.usage.report(key_id="key_nobody")
    assert (nothing.requests, nothing.cost_usd) == (0, Decimal(0))

    assert await store.ledger.spend_since("key_a", period_start("day", now)) == Decimal("0.501")
    assert await store.ledger.spend_since("key_a", period_start("total", now)) == Decimal("0.751")
    # Not at midnight: whole days from the rollup, the partial first day from the raw rows.
    assert await store.ledger.spend_since("key_a", yesterday - dt.timedelta(minutes=1)) == Decimal("0.751")
    assert await store.ledger.spend_since("key_a", now + dt.timedelta(minutes=1)) == Decimal(0)
    assert await store.ledger.spend_since("key_b", period_start("total", now)) == Decimal(0)

    recent = await store.ledger.recent_usage("key_a", now - dt.timedelta(seconds=5))
    assert (recent.requests, recent.tokens) == (3, 30)

    assert await store.ledger.prune(now - dt.timedelta(hours=1)) == 1  # yesterday's raw row
    assert await store.ledger.count() == 5
    assert await store.ledger.spend_since("key_a", period_start("total", now)) == Decimal("0.751")


@pytest.mark.parametrize("prepared", [False, True], ids=["prepared-at-insert", "prepared-ahead"])
async def test_ledger_rows_read_back_as_the_store_queries_them(store: Store, prepared: bool) -> None:
    """The batch insert writes through the driver: its stored values must be the ones SQLAlchemy binds
    when it queries (SQLite compares times as text), whole seconds and other time zones included; the
    same when the writer prepared each row as it joined its batch (`prepare`)."""
    plus_two = dt.timezone(dt.timedelta(hours=2))
    whole = dt.datetime(2026, 12, 2, 10, 0, 0, tzinfo=plus_two)  # 08:00:00 UTC, no microseconds
    fine = dt.datetime(2026, 12, 2, 23, 59, 59, 999999, tzinfo=UTC)
    rows = [_row("key_t", when=whole, stream=True), _row("key_t", when=fine, cost="1.5", ttft_ms=3.25)]
    values = [store.ledger.prepare(row) for row in rows] if prepared else None
    with pytest.raises(ValueError, match="one entry per row"):
        await store.ledger.insert(rows, [store.ledger.prepare(rows[0])])
    assert await store.ledger.insert([*rows, rows[0]], None if values is None else [*values, values[0]]) == 2
    assert await store.ledger.count(time=whole) == 1
    assert await store.ledger.count(time=fine) == 1
    assert await store.ledger.count(stream=True, key_id="key_t") == 1
    stored = {row["request_id"]: row for row in await store.ledger.rows(key_id="key_t")}
    first, second = stored[rows[0].request_id], stored[rows[1].request_id]
    assert first["time"] == whole and first["time"].tzinfo is not None
    assert (second["time"], second["cost_usd"], second["ttft_ms"]) == (fine, Decimal("1.5"), 3.25)
    [day] = await store.usage.report(key_id="key_t", group_by=["day"])
    assert (day.day, day.requests, day.cost_usd) == (dt.date(2026, 12, 2), 2, Decimal("1.501"))


async def test_postgres_batches_survive_their_held_connection_being_dropped() -> None:
    """PostgreSQL's batches go through one connection kept across them: when the server drops it (an idle
    timeout, a restart, a proxy), the next batch goes through on a fresh one instead of failing."""
    with postgres_database() as (url, name):
        store = await Store.open(url)
        try:
            now = dt.datetime.now(UTC)
            assert await store.ledger.insert([_row("key_h", when=now) for _ in range(3)]) == 3
            dropped = admin_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            assert dropped[0], "the held connection was not found on the server"
            assert await store.ledger.insert([_row("key_h", when=now) for _ in range(2)]) == 2
            assert await store.ledger.count(key_id="key_h") == 5
            [day] = await store.usage.report(key_id="key_h", group_by=["day"])
            assert day.requests == 5
        finally:
            await store.aclose()


def test_budget_periods_are_calendar_aligned_in_utc() -> None:
    moment = dt.datetime(2026, 12, 3, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=-8)))  # Thu 23:30 UTC
    assert period_start("day", moment) == dt.datetime(2026, 12, 3, tzinfo=UTC)
    assert period_start("week", moment) == dt.datetime(2026, 11, 30, tzinfo=UTC)  # Monday
    assert period_start("month", moment) == dt.datetime(2026, 12, 1, tzinfo=UTC)
    assert period_start("total", moment) == dt.datetime(1970, 1, 1, tzinfo=UTC)


async def test_many_writers_at_once(store: Store) -> None:
    """Concurrent batches touching the same rollup rows (as several workers do) add up exactly."""
    now = dt.datetime.now(UTC)
    batches = [[_row(f"key_{i % 3}", when=now) for i in range(20)] for _ in range(8)]
    written = await asyncio.gather(*(store.ledger.insert(batch) for batch in batches))
    assert sum(written) == 160
    report = await store.usage.report(group_by=["key"])
    assert sum(r.requests for r in report) == 160
    assert sum(r.cost_usd for r in report) == Decimal("0.160")


async def test_sqlite_batches_from_two_workers_add_up_and_close_their_thread(tmp_path: Path) -> None:
    """On a SQLite file each worker writes its ledger batches on a connection and thread of its own
    (sqlite_thread.py): two such writers at once add up exactly, and closing the store ends the thread."""
    import threading

    url = f"sqlite+aiosqlite:///{tmp_path}/ledger.db"
    first, second = await Store.open(url), await Store.open(url)
    now = dt.datetime.now(UTC)
    batches = [[_row("key_s", when=now) for _ in range(32)] for _ in range(6)]
    try:
        written = await asyncio.gather(
            *((first if i % 2 else second).ledger.insert(batch) for i, batch in enumerate(batches))
        )
        assert written == [32] * 6
        assert await first.ledger.count(key_id="key_s") == 192
        [total] = await second.usage.report(key_id="key_s")
        assert (total.requests, total.cost_usd) == (192, Decimal("0.192"))
        assert any(t.name.startswith("ledger-sqlite") for t in threading.enumerate())
    finally:
        await first.aclose()
        await second.aclose()
    await async_wait_until(
        lambda: not any(t.name.startswith("ledger-sqlite") for t in threading.enumerate()), timeout=5
    )


def test_head_revision_constant_matches_the_scripts() -> None:
    from llm_api.store.migrate import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


async def test_writer_keeps_rows_through_an_outage_and_drops_only_past_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A real outage (the database refuses connections): rows wait in the bounded queue, the overflow is
    dropped, counted and logged once; once the database is back, every kept row is written, once."""
    from tests.pg import terminate

    with postgres_database() as (url, name):
        store = await Store.open(url)
        dropped: list[int] = []
        writer = LedgerWriter(
            store.ledger, engine=store.engine, max_queue=5, flush_interval_s=0.05, on_dropped=dropped.append
        )
        writer.start()
        try:
            now = dt.datetime.now(UTC)
            writer.record(_row("key_w", when=now))
            await async_wait_until(lambda: writer.written == 1, timeout=5, interval=0.01)
            admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            terminate(name)
            with caplog.at_level("INFO", logger="llm_api.store"):
                writer.record(_row("key_w", when=now))  # taken into the batch that now fails
                await async_wait_until(
                    lambda: "database write failed" in caplog.text, timeout=5, interval=0.01
                )
                for _ in range(8):
                    writer.record(_row("key_w", when=now))
                assert writer.dropped == 3 and sum(dropped) == 3  # 5 queued, 1 in the failing batch
                assert caplog.text.count("usage ledger queue full") == 1
                admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                await async_wait_until(lambda: writer.written == 7, timeout=15, interval=0.01)
                await async_wait_until(
                    lambda: "database writes recovered" in caplog.text, timeout=5, interval=0.01
                )
            assert caplog.text.count("database write failed") == 1
            assert await store.ledger.count(key_id="key_w") == 7
        finally:
            await writer.aclose()
            await store.aclose()


@contextlib.asynccontextmanager
async def _running_writer(database_url: str) -> AsyncIterator[tuple[Store, LedgerWriter]]:
    store = await Store.open(database_url)
    writer = LedgerWriter(store.ledger, engine=store.engine, flush_interval_s=0.05)
    writer.start()
    try:
        yield store, writer
    finally:
        await writer.aclose()
        await store.aclose()


async def test_writer_drops_a_row_it_cannot_convert_and_keeps_writing(database_url: str) -> None:
    async with _running_writer(database_url) as (store, writer):
        now = dt.datetime.now(UTC)
        naive = _row("key_n", when=now.replace(tzinfo=None))  # a UTC column refuses a naive time
        with pytest.raises(ValueError, match="naive"):
            store.ledger.prepare(naive)
        for row in (_row("key_n", when=now), naive, _row("key_n", when=now)):
            writer.record(row)
        await async_wait_until(lambda: writer.written == 2 and writer.dropped == 1, timeout=15, interval=0.01)
        writer.record(_row("key_n", when=now))  # the writer is still running
        await async_wait_until(lambda: writer.written == 3, timeout=15, interval=0.01)
        assert await store.ledger.count(key_id="key_n") == 3


async def test_writer_drops_only_the_row_the_database_refuses(database_url: str) -> None:
    async with _running_writer(database_url) as (store, writer):
        now = dt.datetime.now(UTC)
        good = [_row("key_g", when=now) for _ in range(3)]
        bad = _row("key_g", when=now, endpoint=None)  # NOT NULL: refused by both databases
        for row in (good[0], bad, good[1], good[2]):
            writer.record(row)
        await async_wait_until(lambda: writer.written == 3 and writer.dropped == 1, timeout=15, interval=0.01)
        assert await store.ledger.count(key_id="key_g") == 3
