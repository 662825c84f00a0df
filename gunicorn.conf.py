"""gunicorn settings for llm-api: `gunicorn -c gunicorn.conf.py llm_api.main:app`.

Environment: BIND (default 0.0.0.0:8000), WEB_CONCURRENCY (default 2 x usable cores + 1),
FORWARDED_ALLOW_IPS (proxies trusted for X-Forwarded-*; default loopback only), LOG_LEVEL.
"""

import ctypes
import ctypes.util
import gc
import logging
import os
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter number


def _find_libc() -> Any:
    """glibc (or a libc like it), or None where there is none to find."""
    name = ctypes.util.find_library("c")  # runs ldconfig (~1.5 ms): once, not on every fork
    return None if name is None else ctypes.CDLL(name)


LIBC = _find_libc()


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """At most `arenas` glibc malloc arenas per process (unless MALLOC_ARENA_MAX says otherwise).

    glibc gives each thread that allocates an arena of its own (up to 8 per core); a worker runs a dozen
    threads (the span and metric exporters, gRPC's, libuv's resolver pool), and each arena's touched pages
    are that worker's own memory: ~15 MiB of RSS per worker measured (bench.memory), for no gain here,
    where the threads allocate little. Set before the master starts any thread; the workers inherit it.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return  # glibc read it at start-up
    if LIBC is None:  # pragma: no cover - not glibc-like
        return
    try:
        LIBC.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt (musl)
        return


def _release_free_heap() -> None:
    """Hand the master's free C-heap pages back to the kernel (glibc's `malloc_trim`) before a fork.

    The import and the preload free a lot of what they allocate, and glibc keeps those pages mapped when
    they are not at the top of the heap: every worker then inherits them and counts them in its RSS,
    ~10 MiB each measured (bench.memory: idle worker RSS 121.6 -> 111.1 MiB). Freed in the master, no
    worker maps them. A few milliseconds, once per fork.
    """
    if LIBC is None:  # pragma: no cover - not glibc-like
        return
    try:
        LIBC.malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - a libc without malloc_trim (musl)
        return


_limit_malloc_arenas()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (containers)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * _usable_cores() + 1)))
# uvicorn_worker.UvicornWorker with uvloop + httptools pinned and graceful_timeout passed on to uvicorn.
worker_class = "llm_api.worker.GatewayWorker"
# The master imports the app once; the workers are forked from it and share its pages (the imports are
# most of a worker's memory) copy-on-write. Nothing connects at import: every client, connection, thread
# and exporter is opened by the lifespan, in each worker, after the fork. A SIGHUP re-forks the workers
# from the master's already imported code: code or environment changes need a restart of the master.
preload_app = True
# No gunicornc control socket: it defaults to one path per user (~/.gunicorn), shared by every instance.
control_socket_disable = True
# Worker heartbeat files in memory, not on a possibly slow or read-only disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - gunicorn creates it safely
timeout = 120
graceful_timeout = 30
keepalive = 5
# Only these proxies may set X-Forwarded-For / X-Forwarded-Proto (uvicorn applies them).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

loglevel = os.environ.get("LOG_LEVEL", "info").lower()
accesslog = None  # the app writes one JSON access line per request (logger llm_api.access)
errorlog = "-"
# gunicorn's and uvicorn's own messages as JSON, like the app's; the app adds its root handler per worker.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": loglevel.upper(), "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["json_stderr"], "propagate": False},
        # Off: uvicorn's access lines would go here; the app logs its own (llm_api.access).
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
    "handlers": {
        "json_stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "formatters": {"json": {"()": "llm_api.utils.logging.JsonFormatter"}},
}


def pre_fork(server: Any, worker: Any) -> None:
    """Before each fork: move everything the master holds (the imported app) to the permanent generation,
    and return its free heap pages to the kernel.

    The workers' collector then never walks those objects, so it never writes their GC headers and the
    pages stay shared with the master instead of being copied into every worker. Cheap after the first call.
    """
    gc.collect()
    gc.freeze()
    _release_free_heap()


def when_ready(server: Any) -> None:
    """Once, in the master, after the app is imported and before the first fork: load what every worker
    would load in its lifespan (exporter modules, the database driver, the price table), so they share it,
    migrate the database, so that no worker imports Alembic, and start the span relay, which exports the
    workers' spans (llm_api/utils/otlp_relay.py)."""
    if not preload_app:
        return
    from llm_api.config import Settings
    from llm_api.preload import migrate_before_fork, preload_shared_state, start_span_relay

    settings = Settings()
    preload_shared_state(settings)
    migrate_before_fork(settings, logging.getLogger("gunicorn.error"))
    master_fds = [listener.fileno() for listener in server.LISTENERS]
    _release_free_heap()  # before the relay's fork too
    start_span_relay(settings, logging.getLogger("gunicorn.error"), master_fds)


def on_exit(server: Any) -> None:
    """The master's last step, after its workers have stopped: the span relay sends what they left it."""
    from llm_api.utils.otlp_relay import stop_relay

    stop_relay()


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker: hand it the master's signal queue as the fork copied it, so a SIGTERM that
    arrived before the worker reset its handlers is not lost (llm_api.worker.GatewayWorker.init_signals)."""
    worker.inherited_signals = server.SIG_QUEUE
    from llm_api.utils.otlp_relay import forget_in_worker

    forget_in_worker()
