"""The budget reservation and the key's rate-limit hit in one Redis round trip.

Two EVALSHA written together on one pooled connection, their two replies read back in order (not a
transaction: each script is atomic by itself, and their keys live in different hash slots); see
`security.redis_commands` for why not redis-py's `Pipeline`.
"""

from __future__ import annotations

from typing import Any

from llm_api.security.ratelimit import SharedHit
from llm_api.security.redis_commands import evalsha, on_one_connection, send_commands, settled_reply

can_pipeline = on_one_connection


async def reserve_with_hit(
    client: Any, reserve: Any, *, keys: list[str], args: list[Any], hit: SharedHit
) -> tuple[Any, Any]:
    """(the rate-limit script's reply, the reservation script's reply); a Redis error is raised."""
    hit_reply, reserve_reply = await send_commands(
        client, evalsha(hit.script, hit.keys, hit.args), evalsha(reserve, keys, args)
    )
    return (
        await settled_reply(hit_reply, hit.script, hit.keys, hit.args),
        await settled_reply(reserve_reply, reserve, keys, args),
    )
