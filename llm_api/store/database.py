"""The async engine: PostgreSQL (asyncpg) for production and several instances, SQLite (aiosqlite) by default.

Build it in the lifespan (after gunicorn's fork: a connection pool must never cross a fork) and dispose
of it on shutdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/llm_api.db"
SQLITE_BUSY_TIMEOUT_S = 5.0
# WAL: readers never wait for the writer; several workers share the file.
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for an in-memory database)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def validate_url(url: str) -> str:
    """ValueError unless `url` names an async driver this gateway ships (asyncpg or aiosqlite)."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ValueError("DATABASE_URL is not a valid SQLAlchemy URL") from None
    if parsed.drivername not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ValueError("DATABASE_URL must start with postgresql+asyncpg:// or sqlite+aiosqlite://")
    return url


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine for `url`; for SQLite the file's directory is created and every connection uses WAL."""
    validate_url(url)
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

        return engine
    # pre_ping: a connection the server dropped (restart, outage) is replaced instead of failing a query.
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
