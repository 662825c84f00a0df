"""Alembic upgrades to the latest revision, under a lock so workers and instances never race.

PostgreSQL: a session-level `pg_advisory_lock` held on the migrating connection (every instance sharing
the database queues on it). SQLite: an exclusive `flock` on a file beside the database (every process on
the machine sharing the file queues on it). The second taker finds the schema at head and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from llm_api.store.database import create_engine, is_sqlite, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("llm_api.store")

SCRIPT_LOCATION = "llm_api.store:migrations"
# The newest revision in migrations/versions (a test checks it). Known here so that a worker finding the
# schema up to date never imports Alembic (seconds of start-up on a busy machine).
HEAD_REVISION = "0002"
# Any constant works; this one spells "llm-api" in ASCII so that it reads as ours in pg_locks.
ADVISORY_LOCK_ID = 0x6C6C6D2D617069


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The head according to Alembic's scripts (HEAD_REVISION must match it)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def _upgrade_on(connection: AsyncConnection) -> bool:
    """Upgrade unless already at head; True when something was applied."""
    head = HEAD_REVISION
    current = await connection.run_sync(_current_revision)
    await connection.commit()
    if current == head:
        return False
    async with connection.begin():
        await connection.run_sync(_upgrade)
    log.info("database migrated", extra={"from_revision": current, "to_revision": head})
    return True


@contextlib.asynccontextmanager
async def _sqlite_lock(url: str) -> AsyncIterator[None]:
    path = sqlite_path(url)
    if path is None:  # in memory: one process only, nothing to race with
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".migrate-lock")
    with lock_path.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


async def migrate_engine(engine: AsyncEngine) -> bool:
    """Bring the database behind `engine` to the latest revision; True when something was applied."""
    url = engine.url.render_as_string(hide_password=False)
    if is_sqlite(url):
        async with _sqlite_lock(url), engine.connect() as connection:
            return await _upgrade_on(connection)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        await connection.commit()
        try:
            return await _upgrade_on(connection)
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
            await connection.commit()


async def migrate(url: str) -> bool:
    """`python -m llm_api.admin migrate`: open an engine for `url`, migrate, dispose."""
    engine = create_engine(url, pool_size=1)
    try:
        return await migrate_engine(engine)
    finally:
        await engine.dispose()
