"""What the gunicorn master loads before forking (llm_api.preload): shared by the workers, and inert."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys, threading
from llm_api.config import Settings
from llm_api.preload import preload_shared_state
before = set(sys.modules)
preload_shared_state(Settings(
    allow_unauthenticated=True,
    otel_exporter_otlp_endpoint="http://127.0.0.1:1",
    otel_exporter_otlp_protocol=sys.argv[1],
))
from genai_prices import data_snapshot
print(json.dumps({
    "loaded": sorted(set(sys.modules) - before),
    "threads": threading.active_count(),
    "snapshot_cached": data_snapshot._bundled_snapshot.cache_info().currsize == 1,
}))
"""


def _probe(protocol: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, protocol], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_master_loads_the_exporter_driver_and_price_table_and_starts_nothing() -> None:
    for protocol, module in (
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
        ("http/protobuf", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
    ):
        result = _probe(protocol)
        loaded = result["loaded"]
        assert isinstance(loaded, list)
        assert module in loaded and "aiosqlite" in loaded, loaded
        # What the Uvicorn worker would import after the fork, and the HTTP exporters' transport.
        assert {"uvloop", "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on"} <= set(loaded)
        assert ("requests" in loaded) is (protocol == "http/protobuf")
        assert result["snapshot_cached"] is True
        assert result["threads"] == 1  # a thread in the master would not survive the fork
