"""The gunicorn worker class: the maintained Uvicorn worker, with gunicorn's graceful timeout honoured.

What happens on SIGTERM with the stock `uvicorn_worker.UvicornWorker`: the master closes its listening
sockets and sends SIGTERM to every worker; each worker's uvicorn stops accepting, closes idle keep-alive
connections and waits for in-flight responses — with no limit, because the worker never sets uvicorn's
`timeout_graceful_shutdown`. After `graceful_timeout` the master SIGKILLs it: streams still open are cut
without a word and the lifespan shutdown (closing clients, flushing spans) never runs.

This worker gives uvicorn a graceful period a few seconds shorter than gunicorn's, so uvicorn cancels
what is left by itself and the lifespan shutdown still runs before the master's SIGKILL. It also pins
uvloop and httptools (start-up fails if either is missing instead of silently falling back), and freezes
what the worker created before serving (`gc.freeze()`), so full collections skip it. With `preload_app`
the imports were made, and frozen, in the master (gunicorn.conf.py's `pre_fork`); this second freeze is
cheap and still covers a configuration without preload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import signal
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

log = logging.getLogger("uvicorn.error")

# Kept for the lifespan shutdown (closing clients, flushing telemetry) inside gunicorn's graceful timeout.
SHUTDOWN_RESERVE_S = 5
GC_GEN0_THRESHOLD = 5_000


def graceful_period_s(graceful_timeout: float) -> int:
    """How long uvicorn lets in-flight requests finish: gunicorn's timeout minus the shutdown reserve."""
    reserve = min(SHUTDOWN_RESERVE_S, graceful_timeout / 2)
    return max(1, int(graceful_timeout - reserve))


class GatewayWorker(UvicornWorker):  # type: ignore[misc]  # untyped base class
    # uvicorn's own access log is off: the app writes one JSON access line per request.
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "uvloop", "http": "httptools", "access_log": False}

    # The master's signal queue as this child inherited it (set by gunicorn.conf.py's post_fork).
    inherited_signals: queue.SimpleQueue[int] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = graceful_period_s(self.cfg.graceful_timeout)

    def init_signals(self) -> None:
        super().init_signals()
        # A signal that reached this process between the fork and the reset above went to the master's
        # handler, inherited with the fork, which queued it in this child's copy of the master's queue: a
        # SIGTERM sent while the worker booted was lost, and the worker served on until gunicorn's graceful
        # timeout killed it (30 s). Deliver it again, now that it ends the worker as it should.
        pending = self.inherited_signals
        while pending is not None:
            try:
                sig = pending.get_nowait()
            except queue.Empty:
                break
            if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                signal.raise_signal(signal.SIGTERM)

    async def _serve(self) -> None:
        # The app is imported by now: hundreds of thousands of long-lived objects (mostly the SDKs' types).
        # Frozen, the cyclic GC stops walking them on every full collection (~100 ms each before, measured).
        # Under preload the master froze them before the fork; this only catches the worker's own.
        gc.collect()
        gc.freeze()
        # A request used to leave ~50-90 tracked containers in reference cycles (the disconnect watcher's
        # CancelledError, the SSE keep-alive's closures; tests/test_request_garbage.py), so at the default
        # gen0 threshold (700) a young collection ran every ~8 requests: 4.7 % of a worker's CPU at c=32.
        # With the cycles gone a request frees everything it made; what still counts towards a young
        # collection is what requests in flight hold, which at c=32 passes 700 often: at 5,000 the young
        # collections are ~2 per 1,000 requests (0.006 ms of GC per request, was 0.074 with the cycles).
        gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
        loop = asyncio.get_running_loop()
        log.info(
            "worker serving",
            extra={
                "event_loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
                "http_protocol": self.config.http,
                "graceful_shutdown_s": self.config.timeout_graceful_shutdown,
                "gc_threshold": list(gc.get_threshold()),
            },
        )
        await super()._serve()
