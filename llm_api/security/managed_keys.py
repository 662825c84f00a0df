"""Managed keys on the request path: a per-worker cache in front of the database, kept fresh through Redis.

A presented secret is looked up by its SHA-256 in the key store (`KeyRepository`), and the answer (found
or not) is cached per worker for MANAGED_KEY_CACHE_TTL_S. Every change (revoke, rotate, limits, models,
expiry) publishes the key id on a Redis channel; each worker subscribes and empties its cache on every
message, so a change is in force everywhere within a round trip. While the subscription is down (no
REDIS_URL, Redis unreachable, a URL scheme pub/sub cannot use) the cache keeps answers for at most
`UNSUBSCRIBED_TTL_S` (1 s), so the promise still holds, at the cost of one lookup per key per second.

A lookup racing with an invalidation is not cached: each clearing bumps a generation number, and an answer
read under an older generation is returned but not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fnmatch
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis

from llm_api.errors import ModelNotAllowed, ServiceUnavailable
from llm_api.spend.types import MINUTE_S, KeyLimits, TokenWindow
from llm_api.store.keys import KeyRecord, KeyRepository, SecretMatch

log = logging.getLogger("llm_api.auth")

UNSUBSCRIBED_TTL_S = 1.0
MAX_CACHED = 10_000
RESUBSCRIBE_WAIT_S = 1.0
HEALTH_CHECK_S = 5  # seconds: a PING on the idle subscription this often finds a dead link
PUBSUB_SCHEMES = ("redis://", "rediss://", "unix://")


def invalidation_channel(prefix: str) -> str:
    return f"{prefix}:managed-keys"


@dataclass(frozen=True, slots=True)
class ClientKey:
    """The authenticated caller: its key id (logs, limits, ledger) and, for a managed key, its record.

    `managed` is None for the keys of API_KEYS / API_KEY_HASHES (global limits, every model).
    """

    id: str
    managed: KeyRecord | None = None

    @property
    def rpm_limit(self) -> int | None:
        return self.managed.rpm_limit if self.managed is not None else None


def model_allowed(patterns: tuple[str, ...] | None, model: str) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(model, pattern) for pattern in patterns)


def authorize_model(client: ClientKey, model: str) -> None:
    """Raise 403 model_not_allowed unless the caller's key may use `model` (call it before going upstream)."""
    if client.managed is not None and not model_allowed(client.managed.models, model):
        raise ModelNotAllowed(f"this API key may not use model '{model}'")


def spend_limits(client: ClientKey, defaults: KeyLimits) -> KeyLimits:
    """The caller's limits: a managed key's own, each one it leaves unset taken from the global defaults
    (RATE_LIMIT, TOKEN_LIMIT, BUDGET_USD/BUDGET_PERIOD); keys from API_KEYS get the defaults."""
    key = client.managed
    if key is None:
        return defaults
    budgeted = key.budget_usd is not None
    return KeyLimits(
        rpm=key.rpm_limit if key.rpm_limit is not None else defaults.rpm,
        tokens=(TokenWindow(key.tpm_limit, MINUTE_S),) if key.tpm_limit is not None else defaults.tokens,
        budget_usd=key.budget_usd if budgeted else defaults.budget_usd,
        budget_period=(key.budget_period or "month") if budgeted else defaults.budget_period,
    )


class ManagedKeys:
    """Resolves presented secrets to managed keys (the cache and its invalidation: see the module)."""

    def __init__(
        self,
        repository: KeyRepository,
        *,
        redis_url: str | None,
        channel: str,
        ttl_s: float,
    ) -> None:
        self._repository = repository
        self._channel = channel
        self._ttl_s = ttl_s
        self._redis: Redis[bytes] | None = None
        if redis_url is not None and redis_url.startswith(PUBSUB_SCHEMES):
            # No socket timeout: the subscriber waits for messages; health checks find a dead link.
            self._redis = Redis.from_url(
                redis_url, health_check_interval=HEALTH_CHECK_S, socket_connect_timeout=1
            )
        self._cache: OrderedDict[bytes, tuple[SecretMatch | None, float]] = OrderedDict()
        self._generation = 0
        self._subscribed = False
        self._listener: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    def start(self) -> None:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="managed-keys-invalidation")

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._redis is not None:
            await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose

    async def lookup(self, secret: str) -> SecretMatch | None:
        """The managed key behind `secret` (revoked or expired ones included), or None; 503 if the key
        store cannot be read."""
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        generation = self._generation
        try:
            match = await self._repository.find_by_secret(secret)
        except Exception as exc:
            log.error("key store unavailable", extra={"exception_type": type(exc).__name__})
            raise ServiceUnavailable(
                "the key store is unavailable; try again shortly", headers={"Retry-After": "1"}
            ) from None
        if generation == self._generation:
            ttl = self._ttl_s if self._subscribed else min(self._ttl_s, UNSUBSCRIBED_TTL_S)
            self._cache[digest] = (match, now + ttl)
            self._cache.move_to_end(digest)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return match

    def clear(self) -> None:
        """Forget every cached answer (this worker)."""
        self._generation += 1
        self._cache.clear()

    async def changed(self, key_id: str) -> None:
        """A key changed: forget it here and tell every other worker and instance."""
        self.clear()
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await self._redis.publish(self._channel, key_id)
        except Exception as exc:
            # Every cache then still expires within its TTL; say so, once per failure.
            log.warning(
                "could not publish a key change; other workers pick it up when their cache expires",
                extra={"exception_type": type(exc).__name__, "key_id": key_id},
            )

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_CHECK_S)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Anything cached before now may have missed a change: start afresh.
                        self.clear()
                        self._subscribed = True
                    elif message["type"] == "message":
                        self.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._subscribed:
                    log.warning(
                        "key invalidation channel lost: caching managed keys for at most 1 s",
                        extra={"exception_type": type(exc).__name__},
                    )
            finally:
                self._subscribed = False
                self.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(RESUBSCRIBE_WAIT_S)


def check_usable(match: SecretMatch, now: dt.datetime) -> str | None:
    """Why the key of `match` may not be used now (a message for the 401), or None if it may."""
    if match.key.revoked_at is not None:
        return "the API key has been revoked"
    if match.key.expired(now):
        return "the API key has expired"
    if match.secret_expires_at is not None and match.secret_expires_at <= now:
        return "the API key has been rotated; use the new key"
    return None
