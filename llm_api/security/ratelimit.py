"""Per-key and per-address rate limits: `limits.aio` on Redis, with an in-process fallback.

Why `limits.aio` and not slowapi (which is not a dependency): slowapi's `Limiter` checks synchronously (a
blocking Redis round trip on the event loop, slowapi#130), refuses async storages (limits#171) and its
middleware breaks streaming responses (slowapi#249, #260). We keep its shape — the limit strings, one key
function per limit (the key id; the client address for authentication failures), a 429 with `Retry-After`
and `X-RateLimit-*` — and do the check with `limits.aio` behind a FastAPI dependency.

Outage policy (see `redis_link`): only when Redis itself does not answer does the worker log one warning
and limit in process — or, with RATE_LIMIT_FAIL_CLOSED, answer 503 — while a background probe pings
Redis every second. The in-process fallback allows each worker its share of each limit (limit /
WEB_CONCURRENCY, rounded up), and it counts every request this worker admitted within the window, shared
or not, so a flapping Redis never hands out a fresh limit.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.storage import storage_from_string
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llm_api.errors import RateLimitBackendUnavailable, RateLimited
from llm_api.security.limit_rules import parse_limit, parse_overrides, storage_uri
from llm_api.security.redis_link import (
    RedisBusy,
    RedisDown,
    RedisLink,
    basic_redis_url,
    blocking_pool,
    hard_deadline_s,
    probe_client,
)
from llm_api.security.windows import RedisSlidingWindow, StrategyWindow, Window, WindowState
from llm_api.utils.context import request_context

if TYPE_CHECKING:
    from llm_api.config import Settings

KEY_SCOPE = "key"
AUTH_FAILURE_SCOPE = "auth-failure"
DEFAULT_MAX_CONNECTIONS = 64


def worker_share(item: RateLimitItem, workers: int) -> RateLimitItem:
    """The same limit with `ceil(amount / workers)`: one worker's part of it during an outage."""
    return type(item)(math.ceil(item.amount / max(1, workers)), item.multiples, item.namespace)


@dataclass(frozen=True, slots=True)
class SharedHit:
    """A key's hit as one script call (`script` registered on the shared Redis), to send with others."""

    item: RateLimitItem
    script: Any
    keys: list[str]
    args: list[Any]


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
        redis_max_connections: int = DEFAULT_MAX_CONNECTIONS,
        fail_closed: bool = False,
        probe_interval_s: float = 1.0,
        workers: int = 1,
    ) -> None:
        self._default = default
        self._auth_failure = auth_failure
        self._overrides = dict(overrides or {})
        self._fail_closed = fail_closed
        self._workers = workers
        self._memory = StrategyWindow(strategy, MemoryStorage())
        self._shares: dict[int, RateLimitItem] = {}
        self._redis: RedisStorage | None = None
        self._shared: Window | None = None
        self._link: RedisLink | None = None
        self._stats: StrategyWindow | None = None
        if redis_uri is not None:
            # No retries inside redis-py: one bounded attempt, then the link decides what it means.
            options: dict[str, Any] = {
                "implementation": "redispy",
                "key_prefix": key_prefix,
                "socket_timeout": hard_deadline_s(redis_timeout_s),
                "socket_connect_timeout": hard_deadline_s(redis_timeout_s),
                "retry": Retry(NoBackoff(), 0),
            }
            basic_url = basic_redis_url(redis_uri)
            if basic_url is not None:
                options = {
                    "implementation": "redispy",
                    "key_prefix": key_prefix,
                    "connection_pool": blocking_pool(
                        basic_url,
                        max_connections=redis_max_connections,
                        timeout_s=hard_deadline_s(redis_timeout_s),
                    ),
                }
            storage = storage_from_string(redis_uri, **options)
            assert isinstance(storage, RedisStorage)
            self._redis = storage
            self._stats = StrategyWindow(strategy, storage)
            self._shared = (
                RedisSlidingWindow(storage)
                if strategy == "sliding-window-counter"
                else StrategyWindow(strategy, storage)
            )
            client = storage.bridge.get_connection()  # type: ignore[attr-defined]
            # Its own timeouts are generous: the link bounds each ping (see RedisLink._confirm).
            probe = probe_client(basic_url, timeout_s=max(1.0, 8 * redis_timeout_s)) if basic_url else client
            self._link = RedisLink(
                probe=probe,
                timeout_s=redis_timeout_s,
                fail_closed=fail_closed,
                probe_interval_s=probe_interval_s,
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
            redis_max_connections=settings.rate_limit_redis_max_connections,
            fail_closed=settings.rate_limit_fail_closed,
            workers=settings.web_concurrency,
        )

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but not answering (requests are limited in process, or refused)."""
        return self._link is not None and self._link.degraded

    @property
    def link(self) -> RedisLink | None:
        """The worker's Redis link (None without REDIS_URL); the spend guard shares it."""
        return self._link

    @property
    def redis_client(self) -> Any:
        """The redis-py client the limiter uses (plain, Sentinel primary or Cluster), or None."""
        return None if self._redis is None else self._redis.bridge.get_connection()  # type: ignore[attr-defined]

    def _key_items(self, key_id: str, rpm_limit: int | None) -> tuple[RateLimitItem, ...]:
        return per_minute(rpm_limit) if rpm_limit is not None else self._overrides.get(key_id, self._default)

    async def check_key(self, key_id: str, *, rpm_limit: int | None = None) -> None:
        """Charge the limit of `key_id` (`rpm_limit`, a managed key's own, replaces RATE_LIMIT); its
        headers go into the request context for every response."""
        self._answer_key(await self._charge(self._key_items(key_id, rpm_limit), KEY_SCOPE, key_id))

    def shared_hit(self, key_id: str, *, rpm_limit: int | None = None) -> SharedHit | None:
        """The key's hit as one script call to send along with another on the same Redis (a single limit on
        the shared sliding-window counter, Redis answering); None: charge it with `check_key`."""
        items = self._key_items(key_id, rpm_limit)
        shared = self._shared
        if len(items) != 1 or not isinstance(shared, RedisSlidingWindow) or self.degraded:
            return None
        keys, args = shared.command(items[0], KEY_SCOPE, key_id)
        return SharedHit(item=items[0], script=shared.script, keys=keys, args=args)

    async def finish_shared_hit(self, hit: SharedHit, reply: Any, key_id: str) -> None:
        """`check_key`'s answer from the reply to a `shared_hit` (headers; RateLimited when spent)."""
        state = RedisSlidingWindow.state(hit.item, reply)
        await self._mirror(state, (hit.item,), KEY_SCOPE, key_id)
        self._answer_key(state)

    async def shared_hit_lost(self, hit: SharedHit, key_id: str) -> None:
        """The call that carried `hit` found Redis down: the outage policy, as `check_key` applies it."""
        self._answer_key(await self._in_outage((hit.item,), KEY_SCOPE, key_id))

    @staticmethod
    def _answer_key(state: WindowState) -> None:
        headers = state.headers()
        context = request_context()
        if context is not None:
            context.response_headers.update(headers)
        if not state.allowed:
            raise RateLimited(f"rate limit exceeded: {state.limit} requests per window", headers=headers)

    async def requests_in_window(self, key_id: str, *, rpm_limit: int | None = None) -> int:
        """Requests `key_id` made in its first limit's current window (for the admin API's usage);
        `rpm_limit` as for `check_key`."""
        item = self._key_items(key_id, rpm_limit)[0]
        if self._stats is not None and self._link is not None:
            stats = self._stats
            return await self._link.call(lambda: stats.used(item, KEY_SCOPE, key_id))
        return await self._memory.used(item, KEY_SCOPE, key_id)

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
        return self._link is None or await self._link.ping()

    async def aclose(self) -> None:
        """Stop the probe and close the Redis connections (lifespan shutdown)."""
        if self._link is not None:
            await self._link.aclose()
        if self._redis is not None:
            bridge: Any = self._redis.bridge
            clients = {id(c): c for c in (bridge.get_connection(False), bridge.get_connection(True))}
            for client in clients.values():
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _charge(self, items: tuple[RateLimitItem, ...], scope: str, ident: str) -> WindowState:
        if self._shared is not None and self._link is not None:
            shared = self._shared
            try:
                state = await self._link.call(lambda: self._hit_all(shared, items, scope, ident))
            except RedisBusy:
                raise RateLimitBackendUnavailable(
                    "the rate-limit check did not finish in time; try again shortly",
                    headers={"Retry-After": "1"},
                ) from None
            except RedisDown:
                return await self._in_outage(items, scope, ident)
            await self._mirror(state, items, scope, ident)
            return state
        return await self._hit_all(self._memory, items, scope, ident)

    async def _mirror(
        self, state: WindowState, items: tuple[RateLimitItem, ...], scope: str, ident: str
    ) -> None:
        """A hit Redis admitted is counted in process too, so that an outage starts from what this worker
        admitted."""
        if state.allowed:
            for share in self._shares_of(items):
                await self._memory.consume(share, scope, ident)

    async def _in_outage(self, items: tuple[RateLimitItem, ...], scope: str, ident: str) -> WindowState:
        """Redis does not answer: 503 when failing closed, else this worker's share of each limit."""
        if self._fail_closed:
            raise RateLimitBackendUnavailable(
                "rate limiting is temporarily unavailable; try again shortly", headers={"Retry-After": "1"}
            ) from None  # called while handling RedisDown: the outage is the cause, not news
        return await self._hit_all(self._memory, self._shares_of(items), scope, ident)

    def _shares_of(self, items: tuple[RateLimitItem, ...]) -> tuple[RateLimitItem, ...]:
        shares = []
        for item in items:
            share = self._shares.get(id(item))
            if share is None:
                share = self._shares[id(item)] = worker_share(item, self._workers)
            shares.append(share)
        return tuple(shares)

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
