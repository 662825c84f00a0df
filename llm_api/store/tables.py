"""The schema, as SQLAlchemy Core tables. Change it only with a new revision in migrations/versions/."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    false,
)

NANOS_PER_USD = 1_000_000_000


def usd_to_nanos(value: Decimal) -> int:
    return int((value * NANOS_PER_USD).to_integral_value())


def nanos_to_usd(value: int) -> Decimal:
    return Decimal(value) / NANOS_PER_USD


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no time zone: stored as naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("rpm_limit", Integer),
    Column("tpm_limit", BigInteger),
    Column("budget_nusd", BigInteger),  # budget_usd in nano-dollars
    Column("budget_period", String(8)),
    Column("models", JSON),  # list of glob patterns, or NULL: every model
    Column("expires_at", UTCDateTime),
    Column("metadata", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

# A key's secrets: one current, plus the old ones still inside a rotation's grace period.
api_key_secrets = Table(
    "api_key_secrets",
    metadata,
    Column("secret_sha256", String(64), primary_key=True),
    Column("key_id", String(32), ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),  # NULL: the current secret
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("time", UTCDateTime, nullable=False),
    Column("key_id", String(32)),
    Column("endpoint", String(200), nullable=False),
    Column("model_requested", String(200)),
    Column("model_served", String(200)),
    Column("provider", String(50)),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_type", String(100)),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cache_read_tokens", BigInteger),
    Column("cache_write_tokens", BigInteger),
    Column("cost_nusd", BigInteger),  # NULL: the price was unknown
    Column("price_version", String(100)),
    Column("usage_estimated", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("cache_hit", Boolean, nullable=False, server_default=false()),  # answered by the response cache
    Index("ix_usage_events_key_id_time", "key_id", "time"),
    Index("ix_usage_events_time", "time"),
)

# One row per (UTC day, key, model), upserted by the ledger writer in the same transaction as the raw rows.
# key_id and model are "" (never NULL) when unknown, so the unique constraint holds on both databases.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cost_nusd", BigInteger, nullable=False),
    Column("unpriced_requests", BigInteger, nullable=False),
)
