"""The app factory: `create_app(settings)`; the lifespan owns every client."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.types import ASGIApp

from llm_api.admin.service import KeyAdmin, ledger_usage, spend_usage
from llm_api.config import Settings
from llm_api.error_handlers import install_error_handlers
from llm_api.middleware import QUIET_PATHS, RequestContextMiddleware
from llm_api.routers import admin, chat, chat_completions, health, messages, models, usage
from llm_api.routers.direct import DirectDispatch
from llm_api.routers.openapi import install_openapi
from llm_api.routing.cache import ResponseCache
from llm_api.routing.config import load_gateway_config
from llm_api.routing.redis_client import redis_from_url
from llm_api.routing.router import Router
from llm_api.security.keys import KeyStore
from llm_api.security.managed_keys import ManagedKeys, invalidation_channel
from llm_api.security.ratelimit import RateLimiter
from llm_api.services.capabilities import CapabilityTable
from llm_api.services.instrumented import InstrumentedChatService
from llm_api.services.models import ModelCatalog
from llm_api.services.providers.registry import ProviderRegistry
from llm_api.services.retry import RetryPolicy
from llm_api.spend import SpendGuard
from llm_api.store.store import Store
from llm_api.store.writer import LedgerWriter
from llm_api.utils.heap_trim import QuietHeapTrim, glibc_malloc_trim
from llm_api.utils.logging import configure_logging
from llm_api.utils.redaction import known_secrets
from llm_api.utils.server_span import ServerSpanMiddleware, ServerTelemetry
from llm_api.utils.tracing import build_telemetry

# FastAPI's own OpenTelemetry is off: the gateway records its server span and HTTP metrics itself
# (ServerSpanMiddleware) on the lifespan's providers. Left on, FastAPI asked the global tracer provider,
# i.e. os.environ, on every request (~3 % of a worker's CPU).
FASTAPI_TELEMETRY_OFF: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


class GatewayApp(FastAPI):
    """FastAPI with its own telemetry off and without the two outermost layers that then only pass every
    request through: the exception telemetry, and the app-wide body limit unless `max_body_size` is set
    (RequestContextMiddleware limits bodies). The profile put 2.6 % of a worker's CPU on the body limit's
    frame alone, with everything on."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(telemetry=FASTAPI_TELEMETRY_OFF, **kwargs)  # type: ignore[arg-type]

    def build_middleware_stack(self) -> ASGIApp:
        unused: tuple[type, ...] = (ExceptionTelemetryMiddleware,)
        if self.max_body_size is None:
            unused += (AppBodyLimitMiddleware,)
        return without_layers(super().build_middleware_stack(), unused)


def without_layers(app: ASGIApp, unused: tuple[type, ...]) -> ASGIApp:
    """The middleware chain starting at `app` with the instances of `unused` taken out (each layer keeps
    the next in `.app`, as Starlette's and FastAPI's middleware do)."""

    def skip(layer: Any) -> Any:
        while isinstance(layer, unused):
            layer = cast(Any, layer).app
        return layer

    head = skip(app)
    layer = head
    while hasattr(layer, "app"):
        layer.app = skip(layer.app)
        layer = layer.app
    return cast(ASGIApp, head)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway. Nothing connects here: clients are opened in the lifespan, per worker."""
    settings = settings or Settings()
    configure_logging(settings.log_level, secrets=known_secrets(settings))
    capabilities = CapabilityTable(settings.model_capabilities)
    # Read and validated here, so a bad file stops the start-up (gunicorn's preload) with its problems.
    gateway = load_gateway_config(settings.gateway_config)
    # The server span and HTTP metrics: off until the lifespan has built this worker's providers.
    server_telemetry = ServerTelemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Again in the worker: under gunicorn's preload a SIGHUP re-applies its logconfig in the master
        # (the root handler is dropped) and re-forks the workers without importing the app again.
        configure_logging(settings.log_level, secrets=known_secrets(settings))
        telemetry = build_telemetry(settings)
        server_telemetry.start(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            enabled=telemetry.traces_endpoint is not None or telemetry.metrics_endpoint is not None,
        )
        app.state.telemetry = telemetry
        app.state.metrics = telemetry.metrics
        router_redis = None
        router: Router | None = None
        if gateway is None:
            providers = ProviderRegistry.from_settings(settings)
            catalog = ModelCatalog(settings.models, configured_providers=providers.configured)
            if settings.cache_enabled and settings.redis_url is not None:
                # The response cache's client (no router: the cache wraps the one provider of a model).
                router_redis = redis_from_url(settings.redis_url, timeout_s=settings.router_redis_timeout_s)
        else:
            providers = ProviderRegistry.from_gateway(settings, gateway)
            catalog = ModelCatalog.from_gateway(gateway)
            if settings.redis_url is not None:
                router_redis = redis_from_url(settings.redis_url, timeout_s=settings.router_redis_timeout_s)
            router = Router.build(
                gateway,
                redis=router_redis,
                key_prefix=settings.router_key_prefix,
                redis_timeout_s=settings.router_redis_timeout_s,
                meter_provider=telemetry.meter_provider,
            )
        app.state.router = router
        cache = None
        if router_redis is not None:
            cache = ResponseCache(
                router_redis,
                key_prefix=settings.router_key_prefix,
                ttl_s=settings.cache_ttl_s,
                max_entry_bytes=settings.cache_max_entry_bytes,
                scope=settings.cache_scope,
                timeout_s=settings.router_redis_timeout_s,
            )
        app.state.response_cache = cache
        rate_limiter = RateLimiter.from_settings(settings)
        app.state.settings = settings
        app.state.key_store = KeyStore(keys=settings.api_keys, digests_hex=settings.api_key_hashes)
        app.state.unauthenticated = app.state.key_store.empty and settings.admin_api_key is None
        store = await Store.open(
            settings.database_url,
            migrate=settings.database_migrate_on_start,
            pool_size=settings.database_pool_size,
        )
        managed_keys = ManagedKeys(
            store.keys,
            redis_url=settings.redis_url,
            channel=invalidation_channel(settings.rate_limit_key_prefix),
            ttl_s=settings.managed_key_cache_ttl_s,
        )
        managed_keys.start()
        ledger_writer = LedgerWriter(
            store.ledger,
            engine=store.engine,
            max_queue=settings.usage_queue_size,
            flush_interval_s=settings.usage_flush_interval_s,
            batch_size=settings.usage_batch_size,
            retention_days=settings.usage_retention_days,
            on_dropped=telemetry.metrics.record_usage_rows_dropped,
        )
        ledger_writer.start()
        trim = glibc_malloc_trim() if settings.heap_trim_when_quiet else None
        heap_trim = QuietHeapTrim(trim) if trim is not None else None
        if heap_trim is not None:
            heap_trim.start()
        app.state.heap_trim = heap_trim
        app.state.store = store
        app.state.managed_keys = managed_keys
        app.state.ledger_writer = ledger_writer
        if settings.admin_api_key is not None:
            app.state.admin_key_digest = hashlib.sha256(
                settings.admin_api_key.get_secret_value().encode("utf-8")
            ).digest()
        app.state.providers = providers
        app.state.model_catalog = catalog
        app.state.rate_limiter = rate_limiter
        spend_guard = SpendGuard.from_settings(settings, limiter=rate_limiter)
        spend_guard.prices.preload()
        # A flushed or restarted Redis rebuilds a key's period spend from the ledger.
        spend_guard.set_spend_source(store.ledger.spend_since)
        app.state.spend_guard = spend_guard
        app.state.key_admin = KeyAdmin(store.keys, notify=managed_keys.changed, spend=spend_guard)
        app.state.key_usage = spend_usage(spend_guard, rate_limiter, fallback=ledger_usage(store.ledger))
        app.state.chat_service = InstrumentedChatService(
            tracer=telemetry.tracer,
            metrics=telemetry.metrics,
            providers=providers,
            capabilities=capabilities,
            retry_policy=RetryPolicy(
                attempts=settings.llm_retry_attempts,
                wait_min_s=settings.llm_retry_wait_min_s,
                wait_max_s=settings.llm_retry_wait_max_s,
            ),
            default_model=settings.default_model,
            drop_unsupported_params=settings.drop_unsupported_params,
            router=router,
            cache=cache,
            cache_enabled=settings.cache_enabled,
        )
        try:
            yield
        finally:
            if heap_trim is not None:
                await heap_trim.aclose()
            await providers.aclose()
            if router_redis is not None:
                await router_redis.aclose()
            await spend_guard.aclose()
            await rate_limiter.aclose()
            await ledger_writer.aclose()
            await managed_keys.aclose()
            await store.aclose()
            server_telemetry.stop()
            await asyncio.to_thread(telemetry.shutdown)

    app = GatewayApp(
        title="llm-api",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    install_error_handlers(app)
    direct_routers = (chat.router, chat_completions.router, messages.router)
    for router in direct_routers:
        app.include_router(router)  # no prefix: DirectDispatch matches the paths they declare
    app.include_router(models.router)
    app.include_router(usage.router)
    app.include_router(health.router)
    if settings.admin_api_key is not None:  # without it the admin API does not exist (404)
        app.include_router(admin.router)
    # Innermost: the hot endpoints skip Starlette's and FastAPI's own layers (routers/direct.py).
    app.add_middleware(DirectDispatch, routes=[route for router in direct_routers for route in router.routes])
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outermost of ours: the span covers the request context's own answers (413, the last-resort 500).
    app.add_middleware(ServerSpanMiddleware, telemetry=server_telemetry, excluded_paths=QUIET_PATHS)
    install_openapi(app)
    return app


def _app_from_environment() -> FastAPI:
    return create_app()


app = _app_from_environment()
