"""Settings for the gateway, read from the environment (pydantic-settings) and validated at start-up."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llm_api.security.limit_rules import parse_limit, parse_overrides, storage_uri
from llm_api.store.database import DEFAULT_DATABASE_URL, validate_url


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _default_workers() -> int:
    return 2 * (os.cpu_count() or 1) + 1


class Settings(BaseSettings):
    """Every knob of the gateway; names match the environment variables documented in the README."""

    # hide_input_in_errors: a refused value (a Redis URL with its password, say) is never echoed.
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # Client authentication.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_key_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allow_unauthenticated: bool = Field(
        default=False,
        description="Development switch: start with no client key configured (every request is let in).",
    )

    # Providers.
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None

    # Request shape.
    default_model: str = "claude-opus-4-5"
    max_messages: int = Field(default=100, ge=1)
    # 32 MiB: Anthropic's own request limit for Messages; base64 images (up to ~5 MB each on Anthropic,
    # 20 MB on OpenAI) make vendor-format bodies far larger than /v1/chat's text. nginx's
    # client_max_body_size (deploy/nginx.conf) must match it.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    drop_unsupported_params: bool = True
    model_capabilities: str | None = Field(
        default=None,
        description="JSON object of glob pattern -> capabilities, merged over the built-in table.",
    )

    # Upstream calls.
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_connect_timeout_s: float = Field(default=5.0, gt=0)
    # "aiohttp": the direct pooled client (default); "sdk": the official SDK clients (sdk_transport.py).
    llm_http_client: Literal["aiohttp", "sdk"] = "aiohttp"
    llm_max_connections: int = Field(default=8192, ge=1)
    llm_retry_attempts: int = Field(default=4, ge=1, le=10)
    llm_retry_wait_min_s: float = Field(default=1.0, ge=0)
    llm_retry_wait_max_s: float = Field(default=16.0, ge=0)
    stream_ping_interval_s: float = Field(default=15.0, gt=0)

    # Compatible endpoints (issue 9): the models GET /v1/models lists (those of configured providers).
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "claude-opus-4-6",
            "claude-sonnet-4-6",
            "claude-haiku-4-5",
            "claude-opus-4-5",
            "gpt-5",
            "gpt-4o",
            "gpt-4o-mini",
            "o3",
            "o4-mini",
        ]
    )

    # Rate limits.
    redis_url: str | None = None
    rate_limit: str = "20/minute"
    rate_limit_overrides: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_strategy: Literal["moving-window", "sliding-window-counter", "fixed-window"] = (
        "sliding-window-counter"
    )
    rate_limit_fail_closed: bool = False
    rate_limit_redis_timeout_s: float = Field(default=0.25, gt=0)
    # Per worker; a check waits for a free connection within its deadline rather than failing.
    rate_limit_redis_max_connections: int = Field(default=64, ge=1)
    auth_failure_limit: str = "30/minute"
    rate_limit_key_prefix: str = Field(default="llm_api", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    # Limits: token and budget reservations, prices (llm_api.spend).
    token_limit: str | None = Field(
        default=None, description="Tokens per window for every key, e.g. 100000/minute."
    )
    budget_usd: Decimal | None = Field(default=None, gt=0)
    budget_period: Literal["day", "week", "month", "total"] = "month"
    model_prices: str | None = Field(default=None, description="JSON: model name or glob -> prices per MTok.")
    default_max_output_tokens: int = Field(default=32_000, ge=1)
    spend_reservation_ttl_s: float = Field(default=900.0, gt=0)

    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "::1"])

    # Store, managed keys, admin API and usage ledger (store).
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="postgresql+asyncpg://... for production and several instances; SQLite by default.",
    )
    database_pool_size: int = Field(default=10, ge=1)
    database_migrate_on_start: bool = True
    admin_api_key: SecretStr | None = None
    managed_key_cache_ttl_s: float = Field(default=10.0, gt=0)
    usage_queue_size: int = Field(default=10_000, ge=1)
    usage_flush_interval_s: float = Field(default=0.2, gt=0, le=1.0)
    # Rows per INSERT: each batch holds the event loop ~35 µs per row (SQLAlchemy builds the statement
    # in the loop thread), so small batches keep the c=1 p99 low (500 rows: ~18 ms).
    usage_batch_size: int = Field(default=32, ge=1, le=1000)
    usage_retention_days: int | None = Field(default=90, ge=1)

    # Operations.
    log_level: str = "INFO"
    # Hand freed C-heap pages back to the kernel once a worker goes quiet after work (utils/heap_trim.py).
    heap_trim_when_quiet: bool = True
    docs_enabled: bool = True
    web_concurrency: int = Field(default_factory=_default_workers, ge=1)
    bind: str = "0.0.0.0:8000"

    # OpenTelemetry (the standard SDK variables; nothing is exported without an endpoint).
    otel_sdk_disabled: bool = False
    otel_service_name: str = "llm-api"
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_exporter_otlp_metrics_endpoint: str | None = None
    otel_exporter_otlp_protocol: Literal["grpc", "http/protobuf"] = "http/protobuf"
    otel_traces_exporter: Literal["otlp", "none"] = "otlp"
    otel_metrics_exporter: Literal["otlp", "none"] = "otlp"
    # Under gunicorn: the workers hand their encoded span batches to one relay process, forked by the
    # master, which exports them (utils/otlp_relay.py); off: each worker exports its own.
    otlp_span_relay: bool = True

    # Router and cache (issue 11): the gateway file, the breaker's and the cache's Redis keys.
    gateway_config: str | None = Field(
        default=None, description="Path of the gateway file (deployments, aliases, router); unset: none."
    )
    router_key_prefix: str = Field(default="llm_api", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    router_redis_timeout_s: float = Field(default=0.25, gt=0)
    cache_enabled: bool = False
    cache_ttl_s: int = Field(default=3600, ge=1)
    cache_scope: Literal["key", "shared"] = "key"
    cache_max_entry_bytes: int = Field(default=1024 * 1024, ge=1024)

    @field_validator(
        "api_keys", "api_key_hashes", "rate_limit_overrides", "forwarded_allow_ips", "models", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("api_key_hashes")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        normalised = [digest.lower() for digest in value]
        for digest in normalised:
            if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
                raise ValueError("API_KEY_HASHES must hold SHA-256 hex digests (64 hex characters)")
        return normalised

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _limit_string(cls, value: str, info: ValidationInfo) -> str:
        parse_limit(value, setting=(info.field_name or "").upper())
        return value

    @field_validator("rate_limit_overrides")
    @classmethod
    def _overrides(cls, value: list[str]) -> list[str]:
        return [f"{ident}={limit}" for ident, limit in parse_overrides(value).items()]

    @field_validator("token_limit", "model_prices", mode="before")
    @classmethod
    def _spend_settings(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str):
            from llm_api.spend.prices import parse_overrides as parse_prices
            from llm_api.spend.types import parse_token_limit

            if info.field_name == "token_limit":
                parse_token_limit(value)
            else:
                parse_prices(value)
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            storage_uri(value.strip())
            return value.strip()
        return value

    @field_validator("model_capabilities")
    @classmethod
    def _capabilities(cls, value: str | None) -> str | None:
        if value:
            from llm_api.services.capabilities import CapabilityTable

            try:
                CapabilityTable(value)
            except ValueError as exc:  # JSONDecodeError and ValidationError are ValueErrors
                raise ValueError(f"MODEL_CAPABILITIES is not a valid capability table: {exc}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return validate_url(value.strip())

    @field_validator("admin_api_key", "usage_retention_days", mode="before")
    @classmethod
    def _blank_store_setting(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator(
        "anthropic_api_key",
        "openai_api_key",
        "otel_exporter_otlp_endpoint",
        "otel_exporter_otlp_traces_endpoint",
        "otel_exporter_otlp_metrics_endpoint",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if (
            not self.api_keys
            and not self.api_key_hashes
            and self.admin_api_key is None
            and not self.allow_unauthenticated
        ):
            raise ValueError(
                "no client API key configured: set API_KEYS or API_KEY_HASHES, or ADMIN_API_KEY to "
                "manage keys at run time (or ALLOW_UNAUTHENTICATED=true for local development only)"
            )
        if self.llm_retry_wait_max_s < self.llm_retry_wait_min_s:
            raise ValueError("LLM_RETRY_WAIT_MAX_S must be at least LLM_RETRY_WAIT_MIN_S")
        return self

    # Router and cache (issue 11).
    @field_validator("gateway_config", mode="before")
    @classmethod
    def _blank_gateway_config(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _cache_needs_redis(self) -> Settings:
        if self.cache_enabled and self.redis_url is None:
            raise ValueError("CACHE_ENABLED=true needs REDIS_URL (cached answers live in Redis)")
        return self
