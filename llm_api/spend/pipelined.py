"""The budget reservation and the key's rate-limit hit in one Redis round trip.

Two EVALSHA in one pipeline (not a transaction: each script is atomic by itself, and their keys live in
different hash slots). A script Redis does not know (NOSCRIPT: a restart, a SCRIPT FLUSH) is sent again
alone, through redis-py's script object, which loads it.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from llm_api.security.ratelimit import SharedHit


def can_pipeline(client: Any) -> bool:
    """A plain (or Sentinel primary's) client: one connection carries both scripts. A Cluster client
    would split the pipeline by slot; it gets two calls."""
    return isinstance(client, Redis)


async def reserve_with_hit(
    client: Any, reserve: Any, *, keys: list[str], args: list[Any], hit: SharedHit
) -> tuple[Any, Any]:
    """(the rate-limit script's reply, the reservation script's reply); a Redis error is raised."""
    pipe = client.pipeline(transaction=False)
    pipe.evalsha(hit.script.sha, len(hit.keys), *hit.keys, *hit.args)
    pipe.evalsha(reserve.sha, len(keys), *keys, *args)
    hit_reply, reserve_reply = await pipe.execute(raise_on_error=False)
    if isinstance(hit_reply, NoScriptError):
        hit_reply = await hit.script(keys=hit.keys, args=hit.args)
    if isinstance(reserve_reply, NoScriptError):
        reserve_reply = await reserve(keys=keys, args=args)
    for reply in (hit_reply, reserve_reply):
        if isinstance(reply, Exception):
            raise reply
    return hit_reply, reserve_reply
