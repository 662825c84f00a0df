"""gunicorn settings for llm-api: `gunicorn -c gunicorn.conf.py llm_api.main:app`."""

import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(2 * multiprocessing.cpu_count() + 1)))
worker_class = "uvicorn_worker.UvicornWorker"
timeout = 120
graceful_timeout = 30
keepalive = 5
# Only these proxies may set X-Forwarded-For / X-Forwarded-Proto (uvicorn applies them).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = None  # the app writes one JSON access line per request
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
