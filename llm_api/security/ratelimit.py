"""Per-key and per-address rate limits: `limits.aio` on Redis, with an in-process fallback.

Why not slowapi's `Limiter` itself: its check is synchronous (a blocking Redis round trip on the
event loop, slowapi#130), it refuses async storages (limits#171) and its middleware breaks streaming
responses (slowapi#249, #260). We keep its shape — the limit strings, one key function per limit
(the key id; the client address for authentication failures), `RateLimitExceeded`'s 429 with
`Retry-After` and `X-RateLimit-*` — and do the check with `limits.aio` behind a FastAPI dependency.

Outage policy: when Redis fails or answers slower than RATE_LIMIT_REDIS_TIMEOUT_S, the worker logs one
warning, then limits in process (`limits` MemoryStorage, same limits) — or, with
RATE_LIMIT_FAIL_CLOSED, answers 503 — while a background probe pings Redis every second; as soon as it
answers, the shared counters apply again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.storage import storage_from_string
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llm_api.errors import RateLimitBackendUnavailable, RateLimited
from llm_api.security.limit_rules import parse_limit, parse_overrides, storage_uri
from llm_api.security.windows import RedisSlidingWindow, StrategyWindow, Window, WindowState
from llm_api.utils.context import request_context

if TYPE_CHECKING:
    from llm_api.config import Settings

log = logging.getLogger("llm_api.ratelimit")

KEY_SCOPE = "key"
AUTH_FAILURE_SCOPE = "auth-failure"


@functools.lru_cache(maxsize=256)
def per_minute(requests: int) -> tuple[RateLimitItem, ...]:
    return parse_limit(f"{requests}/minute", setting="rpm_limit")


class RateLimiter:
    """Charges one hit per request against the caller's limits; raises RateLimited when spent."""

    def __init__(
        self,
        *,
        default: tuple[RateLimitItem, ...],
        auth_failure: tuple[RateLimitItem, ...],
        overrides: Mapping[str, tuple[RateLimitItem, ...]] | None = None,
        strategy: str = "sliding-window-counter",
        redis_uri: str | None = None,
        key_prefix: str = "llm_api",
        redis_timeout_s: float = 0.25,
        fail_closed: bool = False,
        probe_interval_s: float = 1.0,
    ) -> None:
        self._default = default
        self._auth_failure = auth_failure
        self._overrides = dict(overrides or {})
        self._fail_closed = fail_closed
        self._timeout_s = redis_timeout_s
        self._probe_interval_s = probe_interval_s
        self._memory = StrategyWindow(strategy, MemoryStorage())
        self._redis: RedisStorage | None = None
        self._shared: Window | None = None
        self._degraded = False
        self._probe: asyncio.Task[None] | None = None
        if redis_uri is not None:
            # No retries inside redis-py: one bounded attempt, then the fallback decides.
            options: dict[str, Any] = {
                "implementation": "redispy",
                "key_prefix": key_prefix,
                "socket_timeout": redis_timeout_s,
                "socket_connect_timeout": redis_timeout_s,
                "retry": Retry(NoBackoff(), 0),
            }
            storage = storage_from_string(redis_uri, **options)
            assert isinstance(storage, RedisStorage)
            self._redis = storage
            self._shared = (
                RedisSlidingWindow(storage)
                if strategy == "sliding-window-counter"
                else StrategyWindow(strategy, storage)
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        """Build the limiter (no connection is opened here; call it in the lifespan, per worker)."""
        overrides = parse_overrides(settings.rate_limit_overrides)
        return cls(
            default=parse_limit(settings.rate_limit, setting="RATE_LIMIT"),
            auth_failure=parse_limit(settings.auth_failure_limit, setting="AUTH_FAILURE_LIMIT"),
            overrides={
                ident: parse_limit(limit, setting=f"RATE_LIMIT_OVERRIDES ({ident})")
                for ident, limit in overrides.items()
            },
            strategy=settings.rate_limit_strategy,
            redis_uri=storage_uri(settings.redis_url) if settings.redis_url else None,
            key_prefix=settings.rate_limit_key_prefix,
            redis_timeout_s=settings.rate_limit_redis_timeout_s,
            fail_closed=settings.rate_limit_fail_closed,
        )

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but failing (requests are limited in process, or refused)."""
        return self._degraded

    async def check_key(self, key_id: str, *, rpm_limit: int | None = None) -> None:
        """Charge the limit of `key_id` (`rpm_limit`, a managed key's own, replaces RATE_LIMIT); its
        headers go into the request context for every response."""
        items = per_minute(rpm_limit) if rpm_limit is not None else self._overrides.get(key_id, self._default)
        state = await self._charge(items, KEY_SCOPE, key_id)
        headers = state.headers()
        context = request_context()
        if context is not None:
            context.response_headers.update(headers)
        if not state.allowed:
            raise RateLimited(f"rate limit exceeded: {state.limit} requests per window", headers=headers)

    async def check_auth_failure(self, client: str) -> None:
        """Charge a failed authentication to the client address; 429 once the address has spent its limit."""
        state = await self._charge(self._auth_failure, AUTH_FAILURE_SCOPE, client)
        if not state.allowed:
            raise RateLimited("too many failed authentication attempts", headers=state.headers())

    async def storage_ready(self) -> bool:
        """Is the configured Redis answering? (True when no Redis is configured.)

        /readyz reports this. In the default fail-open mode requests that do arrive are still served
        with the in-process fallback; the probe tells the orchestrator the shared limit is not in force.
        """
        if self._redis is None:
            return True
        return await self._ping()

    async def aclose(self) -> None:
        """Stop the probe and close the Redis connections (lifespan shutdown)."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self._redis is not None:
            bridge: Any = self._redis.bridge
            clients = {id(c): c for c in (bridge.get_connection(False), bridge.get_connection(True))}
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _charge(self, items: tuple[RateLimitItem, ...], scope: str, ident: str) -> WindowState:
        if self._shared is not None and not self._degraded:
            try:
                async with asyncio.timeout(self._deadline_s):
                    return await self._hit_all(self._shared, items, scope, ident)
            except Exception as exc:  # any storage failure degrades (logged once)
                self._enter_fallback(exc)
        if self._shared is not None and self._fail_closed:
            raise RateLimitBackendUnavailable(
                "rate limiting is temporarily unavailable; try again shortly", headers={"Retry-After": "1"}
            )
        return await self._hit_all(self._memory, items, scope, ident)

    @staticmethod
    async def _hit_all(
        window: Window, items: tuple[RateLimitItem, ...], scope: str, ident: str
    ) -> WindowState:
        """Hit each limit in turn; stop at the first refusal. Headers describe the tightest limit."""
        tightest: WindowState | None = None
        for item in items:
            state = await window.hit(item, scope, ident)
            if not state.allowed:
                return state
            if tightest is None or state.remaining < tightest.remaining:
                tightest = state
        assert tightest is not None
        return tightest

    @property
    def _deadline_s(self) -> float:
        # Connect and reply each get RATE_LIMIT_REDIS_TIMEOUT_S; this bounds the whole check.
        return 2 * self._timeout_s

    def _enter_fallback(self, exc: BaseException) -> None:
        if self._degraded:
            return
        self._degraded = True
        log.warning(
            "rate-limit storage unavailable: %s until Redis answers again",
            "refusing requests (503)" if self._fail_closed else "limiting in process",
            extra={"exception_type": type(exc).__name__, "fail_closed": self._fail_closed},
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_recovered(), name="ratelimit-redis-probe")

    async def _probe_until_recovered(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(self._probe_interval_s)
            if await self._ping():
                self._degraded = False
                log.info(
                    "rate-limit storage recovered: shared limits apply again",
                    extra={"outage_s": round(time.monotonic() - started, 3)},
                )
                return

    async def _ping(self) -> bool:
        if self._redis is None:
            return True
        try:
            async with asyncio.timeout(self._deadline_s):
                return bool(await self._redis.check())
        except TimeoutError:
            return False
