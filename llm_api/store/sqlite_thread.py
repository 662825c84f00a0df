"""One SQLite connection on a thread of its own, for the usage ledger's batches.

Through the engine a batch took the pool checkout and its reset on return, and three aiosqlite calls, each
a hop to the driver's thread and back: ~0.45 ms of the event-loop thread per batch however small, one
request in every USAGE_BATCH_SIZE paid it at c=1 (the c=1 p99; docs/performance.md). Here the whole
transaction runs as one function on this thread: one hop per batch. sqlite3 releases the GIL while SQLite
works, so the loop goes on meanwhile; the batch's Python work (the values, the rollup) stays on the
caller's thread (run on this one it competed with the loop for the GIL). Measured in process, per 32-row
batch: 0.75 -> 0.35 ms of the loop thread, 1.85 -> 1.2 ms of CPU in all. The connection is opened on
first use (after gunicorn's fork), with the engine's pragmas, and after any error it is closed and opened
again for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from llm_api.store.database import SQLITE_PRAGMAS

T = TypeVar("T")


class SqliteThread:
    """Runs functions on one sqlite3 connection to `path`, one at a time, on one thread."""

    def __init__(self, path: Path, *, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the thread, inside a transaction it commits (rolled back if it raises)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection or self._connect()
        try:
            result = work(connection)
            connection.commit()
        except BaseException:
            # The connection's state is unknown (a lost file, a refused row): a fresh one next time.
            self._close()
            raise
        return result

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout_s)
        try:
            for pragma in SQLITE_PRAGMAS:
                connection.execute(pragma)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                with contextlib.suppress(sqlite3.Error):
                    connection.rollback()
            finally:
                connection.close()

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._close)
        finally:
            executor.shutdown(wait=False)
