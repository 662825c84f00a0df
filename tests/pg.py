"""PostgreSQL for the tests: uniquely named databases on 127.0.0.1:5432 (user postgres, trust auth),
created for a test and dropped afterwards; never a database this suite did not create."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def admin_sql(*statements: str) -> list[Any]:
    """Run statements on the `test` database (in a thread: callers may be inside an event loop)."""
    results: list[Any] = []
    failure: list[BaseException] = []

    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            for statement in statements:
                results.append(await conn.fetch(statement))
        finally:
            await conn.close()

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return results


def terminate(name: str) -> None:
    admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


@contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, database name) of a fresh database, dropped afterwards."""
    name = f"llm_api_test_{uuid.uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name
    finally:
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        terminate(name)
        admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
