"""Per-key rate limits (placeholder: allows everything until the Redis-backed limiter lands)."""

from __future__ import annotations


class RateLimiter:
    async def check_key(self, key_id: str) -> None:
        return None

    async def check_auth_failure(self, client: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
