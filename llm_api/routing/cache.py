"""Exact-match response cache in Redis, scoped to the calling key unless CACHE_SCOPE=shared.

Off by default: CACHE_ENABLED=true turns it on for every request, an alias's `cache:` in the gateway file
for that alias (the alias's setting wins when given: `enabled_for`). Entries expire after CACHE_TTL_S;
an answer larger than CACHE_MAX_ENTRY_BYTES (serialised) is not stored.

    <prefix>:cache:v1:k:<key id>:<sha256>     scope "key" (default): one key never sees another's entries
    <prefix>:cache:v1:shared:<sha256>         scope "shared"

The sha256 is over the canonical request (`canonical_request`): model or alias as requested, system,
messages, tools, tool choice, response format, sampling parameters and limits, and the parameters the
neutral model does not map; sorted keys, so field order never matters. `stream` is left out: a stream may
replay a JSON answer and the other way round (`replay.result_to_events`). Keys hold a key id (a hash
prefix), never a raw API key; values hold the neutral `ChatResult`, and so hold prompt-derived text: flush
them with `flush()` (DELETE /admin/cache, optionally ?key_id=).

Only complete answers are stored: the caller calls `put` after a JSON answer, or after a stream ended
with its MessageDelta (`replay.ResultBuilder` gives None otherwise); never for errors, failed, cancelled
or truncated streams. `put` refuses a result without a stop reason as a last guard.

A Redis failure is a miss (and a skipped store), logged once per outage: the cache never fails a request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from llm_api.chat_model import Chat, ChatResult, StreamEvent
from llm_api.routing.replay import result_from_json, result_to_events, result_to_json
from llm_api.security.keys import KEY_ID_LENGTH

__all__ = [
    "CacheControl",
    "CachedAnswer",
    "ResponseCache",
    "canonical_request",
    "enabled_for",
    "parse_cache_control",
    "result_to_events",
]

log = logging.getLogger("llm_api.routing.cache")
Scope = Literal["key", "shared"]
_KEY_ID = re.compile(rf"^[0-9a-f]{{{KEY_ID_LENGTH}}}$")
_FLUSH_BATCH = 500


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What one request allows: `read` a stored answer, `write` the fresh one."""

    read: bool = True
    write: bool = True


def parse_cache_control(header: str | None) -> CacheControl:
    """`Cache-Control: no-cache` skips the lookup but stores the answer; `no-store` neither reads nor
    writes. Other directives are ignored; names are case-insensitive, arguments (`no-cache="x"`) too."""
    if not header:
        return CacheControl()
    directives = {part.split("=", 1)[0].strip().lower() for part in header.split(",")}
    if "no-store" in directives:
        return CacheControl(read=False, write=False)
    if "no-cache" in directives:
        return CacheControl(read=False, write=True)
    return CacheControl()


def enabled_for(*, cache_enabled: bool, alias_cache: bool | None) -> bool:
    """CACHE_ENABLED, unless the requested alias says otherwise in the gateway file."""
    return cache_enabled if alias_cache is None else alias_cache


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer and what served it (for X-LLM-Model / X-LLM-Provider / X-LLM-Deployment)."""

    result: ChatResult
    provider: str | None = None
    deployment: str | None = None

    def events(self) -> list[StreamEvent]:
        """The answer as a stream (for a streamed request that hit the cache)."""
        return result_to_events(self.result)


def canonical_request(chat: Chat) -> bytes:
    """The request as the cache sees it: everything that can change the answer, `stream` excluded."""
    relevant = dataclasses.replace(chat, stream=False, include_usage=False)
    return orjson.dumps(
        relevant, default=_tagged, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
    )


def _tagged(value: object) -> object:
    """Dataclasses with their type's name (a Text and a Thinking with the same text differ)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"_type": type(value).__name__, **fields}
    if isinstance(value, Mapping):  # the frozen `extras` bags
        return dict(value)
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


class ResponseCache:
    """Reads and writes cached answers; `redis` is a redis.asyncio client (or cluster client)."""

    def __init__(
        self,
        redis: Any,
        *,
        key_prefix: str = "llm_api",
        ttl_s: int = 3600,
        max_entry_bytes: int = 1024 * 1024,
        scope: Scope = "key",
        timeout_s: float = 0.25,
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}:cache:v1"
        self._ttl_s = ttl_s
        self._max_entry_bytes = max_entry_bytes
        self._scope = scope
        self._timeout_s = timeout_s
        self._failing = False

    def key_for(self, chat: Chat, *, key_id: str | None) -> str:
        digest = hashlib.sha256(canonical_request(chat)).hexdigest()
        if self._scope == "shared":
            return f"{self._prefix}:shared:{digest}"
        return f"{self._prefix}:k:{key_id or 'anonymous'}:{digest}"

    async def get(self, chat: Chat, *, key_id: str | None) -> CachedAnswer | None:
        """The stored answer for this exact request and caller, or None."""
        try:
            async with asyncio.timeout(self._timeout_s):
                data = await self._redis.get(self.key_for(chat, key_id=key_id))
        except Exception as exc:  # a cache outage is a miss
            self._failed(exc)
            return None
        self._recovered()
        if data is None:
            return None
        try:
            result, served = result_from_json(data)
        except ValueError:
            return None  # another version's entry: a miss; the fresh answer overwrites it
        return CachedAnswer(result, provider=served.get("provider"), deployment=served.get("deployment"))

    async def put(
        self,
        chat: Chat,
        result: ChatResult,
        *,
        key_id: str | None,
        provider: str | None = None,
        deployment: str | None = None,
    ) -> bool:
        """Store a complete answer; False when not stored (too large, incomplete, or Redis failing)."""
        if result.stop_reason is None:
            return False
        data = result_to_json(result, served={"provider": provider, "deployment": deployment})
        if len(data) > self._max_entry_bytes:
            return False
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._redis.set(self.key_for(chat, key_id=key_id), data, ex=self._ttl_s)
        except Exception as exc:  # a cache outage skips the store
            self._failed(exc)
            return False
        self._recovered()
        return True

    async def flush(self, *, key_id: str | None = None) -> int:
        """Delete every entry, or only those of one key id (scope "key"); the number deleted.

        Entries stored under CACHE_SCOPE=shared belong to no key: only a full flush removes them."""
        if key_id is None:
            pattern = f"{self._prefix}:*"
        elif _KEY_ID.match(key_id):
            pattern = f"{self._prefix}:k:{key_id}:*"
        else:
            raise ValueError(f"a key id is {KEY_ID_LENGTH} lowercase hex digits")
        deleted = 0
        batch: list[bytes] = []
        started = time.monotonic()
        async for key in self._redis.scan_iter(match=pattern, count=_FLUSH_BATCH):
            batch.append(key)
            if len(batch) >= _FLUSH_BATCH:
                deleted += int(await self._redis.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(await self._redis.unlink(*batch))
        log.info(
            "response cache flushed",
            extra={"deleted": deleted, "key_id": key_id, "duration_s": round(time.monotonic() - started, 3)},
        )
        return deleted

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning(
                "response cache unavailable: serving without it", extra={"exception_type": type(exc).__name__}
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("response cache available again")
