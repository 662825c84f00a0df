# llm-api: gunicorn with Uvicorn workers, installed from uv.lock. Build: docker build -t llm-api .
# Python 3.11 matches the lock (requires-python ==3.11.*); uv matches the Makefile's UV_VERSION.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first (cached while only the code changes), then the project itself, non-editable.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY llm_api ./llm_api
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY gunicorn.conf.py ./
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIND=0.0.0.0:8000
USER 10001:10001
EXPOSE 8000
# No curl in slim: Python's urllib probes liveness (any non-2xx answer or error exits non-zero).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('BIND', ':8000').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
# Exec form: gunicorn is PID 1 and receives SIGTERM itself (graceful shutdown, see README.md, "Operating it").
CMD ["gunicorn", "-c", "/app/gunicorn.conf.py", "llm_api.main:app"]
