"""What every worker loads anyway, loaded once in the gunicorn master before it forks (`preload_app`), and
the database migration, run once before the workers start.

Pages the master fills before the fork are shared by every worker until one writes to them; what a worker
loads in its lifespan is its own. The OTLP exporters' modules, the database driver and the price table
(genai-prices' snapshot, ~10 MiB) were loaded by each worker in its lifespan, and the Uvicorn worker loads
its protocol modules when it starts. `preload_shared_state` only imports and loads static data: nothing
connects, starts a thread or keeps a file open (the lifespan still opens every client after the fork).
`migrate_before_fork` connects, but only in a child process of its own, which exits before any worker is
forked. Called by gunicorn.conf.py's `when_ready`, not by `create_app`, which tests call in-process.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Sequence

from llm_api.config import Settings
from llm_api.spend.prices import load_package_table
from llm_api.store.database import is_sqlite
from llm_api.utils.otlp_relay import start_relay
from llm_api.utils.processes import wait_or_kill
from llm_api.utils.tracing import direct_span_exporter, exporter_classes, signal_endpoint

# The master waits at most this long for the database before leaving the migration to the workers.
MIGRATE_TIMEOUT_S = 15.0


# What the Uvicorn worker imports when it configures itself after the fork: the event loop, the HTTP and
# WebSocket protocol classes and the lifespan (~60 modules with httptools, uvloop and websockets).
UVICORN_MODULES = (
    "uvloop",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
)


def preload_shared_state(settings: Settings) -> None:
    if settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint:
        exporter_classes(settings)
        if settings.otel_exporter_otlp_protocol == "http/protobuf":
            # The HTTP exporters' transport: requests, urllib3, charset_normalizer, idna, certifi (~110
            # modules), imported only when the exporter is built, in the lifespan.
            importlib.import_module("requests")
    importlib.import_module("aiosqlite" if is_sqlite(settings.database_url) else "asyncpg")
    for module in UVICORN_MODULES:
        importlib.import_module(module)
    load_package_table()


def start_span_relay(settings: Settings, log: logging.Logger, close_in_relay: Sequence[int]) -> None:
    """From the master, before the first fork: the process that exports every worker's spans
    (utils/otlp_relay.py), when spans are exported and OTLP_SPAN_RELAY is on."""
    traces_endpoint = signal_endpoint(settings, "traces")
    if traces_endpoint is None or not settings.otlp_span_relay:
        return
    start_relay(
        traces_endpoint,
        settings.otel_exporter_otlp_protocol,
        direct_span_exporter(settings, traces_endpoint),
        log,
        close_in_relay=close_in_relay,
    )


def migrate_before_fork(settings: Settings, log: logging.Logger) -> None:
    """Once, from the master, before the first fork: bring the database to the latest revision, in a
    child process forked for it.

    Each worker's lifespan still checks the revision, finds it at head and never imports Alembic: the
    worker that migrated used to keep Alembic, Mako and Pygments (~120 modules) and what the migration
    allocated, ~13 MiB of its own memory (bench.memory, 3 workers), for its whole life. Not in the master
    itself either: every worker's RSS would include those pages, inherited at the fork. Best effort: when
    the database does not answer in time, the workers migrate in their lifespan as before.
    `log`: a logger the master writes out (gunicorn's; the app's handlers exist only in the workers).
    """
    if not settings.database_migrate_on_start:
        return
    pid = os.fork()
    if pid == 0:  # the child: migrate, report, and leave without running the master's exit handlers
        status = 1
        try:
            asyncio.run(_migrate(settings.database_url))
            status = 0
        except BaseException as exc:  # the workers try again, and fail their start-up as before if it fails
            log.warning(
                "the database was not migrated before the workers started; they will migrate it",
                extra={"exception_type": type(exc).__name__},
            )
        finally:
            os._exit(status)
    if not wait_or_kill(pid, MIGRATE_TIMEOUT_S + 5):
        log.warning("the database migration did not finish before the workers started; they will migrate it")


async def _migrate(url: str) -> None:
    from llm_api.store.migrate import migrate

    async with asyncio.timeout(MIGRATE_TIMEOUT_S):
        await migrate(url)  # logs "database migrated" when it applied a revision
