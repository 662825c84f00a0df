"""What every worker loads anyway, loaded once in the gunicorn master before it forks (`preload_app`).

Pages the master fills before the fork are shared by every worker until one writes to them; what a worker
loads in its lifespan is its own. The OTLP exporters' modules, the database driver and the price table
(genai-prices' snapshot, ~10 MiB) were loaded by each worker in its lifespan, and the Uvicorn worker loads
its protocol modules when it starts. Only imports and static
data here: nothing connects, starts a thread or keeps a file open (the lifespan still opens every client
after the fork). Called by gunicorn.conf.py's `when_ready`, not by `create_app`, which tests call in-process.
"""

from __future__ import annotations

import importlib

from llm_api.config import Settings
from llm_api.spend.prices import load_package_table
from llm_api.store.database import is_sqlite
from llm_api.utils.tracing import exporter_classes


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
