"""gunicorn settings for llm-api: `gunicorn -c gunicorn.conf.py llm_api.main:app`.

Environment: BIND (default 0.0.0.0:8000), WEB_CONCURRENCY (default 2 x usable cores + 1),
FORWARDED_ALLOW_IPS (proxies trusted for X-Forwarded-*; default loopback only), LOG_LEVEL.
"""

import os


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning (containers)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * _usable_cores() + 1)))
# uvicorn_worker.UvicornWorker with uvloop + httptools pinned and graceful_timeout passed on to uvicorn.
worker_class = "llm_api.worker.GatewayWorker"
preload_app = False  # each worker imports the app after the fork; the lifespan opens every client
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
