"""Rate-limit windows on `limits.aio` storages: consume one hit and read the window back.

`limits` answers "hit" and "window stats" with separate calls; against Redis that is two round trips
for the sliding-window counter (two EVALSHA) and three for the fixed window (EVALSHA, GET, TTL).
For the default strategy, the sliding-window counter on Redis, `RedisSlidingWindow` does both in ONE
Lua call on exactly the keys `limits` uses, so `limits`' own tools (stats, clear) still read them.
The other strategies and the in-process fallback go through `limits`' strategy classes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItem
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as StrategyLimiter

from llm_api.security.redis_commands import run_script

_STRATEGIES: dict[str, type[StrategyLimiter]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}


@dataclass(frozen=True, slots=True)
class WindowState:
    """One limit after a hit: was it allowed, how much is left, and when (epoch s) room frees up."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    def headers(self, *, now: float | None = None) -> dict[str, str]:
        """slowapi's header set: X-RateLimit-Limit/Remaining/Reset (epoch s), plus Retry-After on refusal."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            wait = self.reset_at - (time.time() if now is None else now)
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return headers


class Window(Protocol):
    async def hit(self, item: RateLimitItem, *identifiers: str) -> WindowState: ...


class StrategyWindow:
    """Any `limits.aio` strategy on any storage: `hit`, then `get_window_stats`."""

    def __init__(self, strategy: str, storage: Storage) -> None:
        self._strategy: StrategyLimiter = _STRATEGIES[strategy](storage)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> WindowState:
        allowed = await self._strategy.hit(item, *identifiers)
        stats = await self._strategy.get_window_stats(item, *identifiers)
        remaining = max(0, min(item.amount, int(stats.remaining)))
        return WindowState(allowed=allowed, limit=item.amount, remaining=remaining, reset_at=stats.reset_time)

    async def used(self, item: RateLimitItem, *identifiers: str) -> int:
        """Hits counted in the current window."""
        stats = await self._strategy.get_window_stats(item, *identifiers)
        return max(0, item.amount - int(stats.remaining))

    async def consume(self, item: RateLimitItem, *identifiers: str) -> None:
        """Count one hit if there is room (no window read-back)."""
        await self._strategy.hit(item, *identifiers)


# limits' acquire_sliding_window.lua and sliding_window.lua in one script (times in milliseconds).
# KEYS[1] = previous window, KEYS[2] = current window; ARGV = limit, expiry (s), cost.
# Returns {acquired (0/1), previous count, previous ttl, current count, current ttl}.
_ACQUIRE_SLIDING_WITH_STATS = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local amount = tonumber(ARGV[3])

local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end

local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
local previous_ttl = math.max(tonumber(redis.call('pttl', KEYS[1])) or 0, 0)
local current_count = tonumber(redis.call('get', KEYS[2])) or 0
current_ttl = math.max(tonumber(redis.call('pttl', KEYS[2])) or 0, 0)
local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count

local acquired = 0
if amount <= limit and weighted + amount <= limit then
    acquired = 1
    if redis.call('exists', KEYS[2]) == 1 then
        current_count = redis.call('incrby', KEYS[2], amount)
    else
        redis.call('set', KEYS[2], amount, 'PX', expiry * 2)
        current_count = amount
        current_ttl = expiry * 2
    end
end
return {acquired, previous_count, previous_ttl, current_count, current_ttl}
"""


def sliding_window_state(
    item: RateLimitItem,
    *,
    allowed: bool,
    previous_count: int,
    previous_ttl_s: float,
    current_count: int,
    current_ttl_s: float,
    now: float,
) -> WindowState:
    """The arithmetic of `limits`' SlidingWindowCounterRateLimiter.get_window_stats."""
    expiry = item.get_expiry()
    weighted = previous_count * previous_ttl_s / expiry + current_count
    remaining = max(0, item.amount - math.floor(weighted))
    reset_in = 0.0
    if previous_count or current_count:
        previous_reset_in = previous_ttl_s % (expiry / previous_count) if previous_count else math.inf
        # The current key lives 2 x expiry; its window ends `expiry` before that (not 0 on the first hit).
        current_reset_in = (current_ttl_s % expiry or float(expiry)) if current_count else math.inf
        reset_in = min(previous_reset_in, current_reset_in)
    return WindowState(allowed=allowed, limit=item.amount, remaining=remaining, reset_at=now + reset_in)


class RedisSlidingWindow:
    """The sliding-window counter on a `limits` RedisStorage (redis-py), one round trip per hit."""

    def __init__(self, storage: RedisStorage) -> None:
        self._storage = storage
        # The redis-py client limits built (plain, Sentinel primary or Cluster): EVALSHA, EVAL on NOSCRIPT.
        self._client: Any = storage.bridge.get_connection()  # type: ignore[attr-defined]
        self._script: Any = self._client.register_script(_ACQUIRE_SLIDING_WITH_STATS)

    def _keys(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> list[str]:
        # limits' own layout ("{key}" and "{key}/-1", one hash slot in a Cluster), with the storage prefix.
        key = item.key_for(*identifiers)
        bridge = self._storage.bridge
        return [
            bridge.prefixed_key(self._storage._previous_window_key(key)),
            bridge.prefixed_key(self._storage._current_window_key(key)),
        ]

    @property
    def script(self) -> Any:
        """The registered script (its `sha`, and a call that loads it on NOSCRIPT)."""
        return self._script

    def command(self, item: RateLimitItem, *identifiers: str) -> tuple[list[str], list[Any]]:
        """The script's keys and arguments for one hit (to send along with other commands)."""
        return self._keys(item, identifiers), [item.amount, item.get_expiry(), 1]

    async def hit(self, item: RateLimitItem, *identifiers: str) -> WindowState:
        keys, args = self.command(item, *identifiers)
        return self.state(item, await run_script(self._client, self._script, keys, args))

    @staticmethod
    def state(item: RateLimitItem, reply: Any) -> WindowState:
        """The window after a hit, from the script's reply."""
        acquired, previous_count, previous_ttl, current_count, current_ttl = (int(v or 0) for v in reply)
        return sliding_window_state(
            item,
            allowed=bool(acquired),
            previous_count=previous_count,
            previous_ttl_s=previous_ttl / 1000,
            current_count=current_count,
            current_ttl_s=current_ttl / 1000,
            now=time.time(),
        )
