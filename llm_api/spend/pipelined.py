"""The budget reservation and the key's rate-limit hit in one Redis round trip.

Two EVALSHA written together on one pooled connection, their two replies read back in order (not a
transaction: each script is atomic by itself, and their keys live in different hash slots). This uses
redis-py's connection API rather than its `Pipeline`, which costs more per call than the round trip it
saves (its observability hooks, and a task to release each connection). A script Redis does not know
(NOSCRIPT: a restart, a SCRIPT FLUSH) is sent again alone, through redis-py's script object, which loads it.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from llm_api.security.ratelimit import SharedHit


def can_pipeline(client: Any) -> bool:
    """A plain (or Sentinel primary's) client: one connection carries both scripts. A Cluster client
    would split them by slot; it gets two calls."""
    return isinstance(client, Redis)


async def _send_both(client: Any, first: tuple[Any, ...], second: tuple[Any, ...]) -> list[Any]:
    """Both commands' replies; an error reply is returned in its place, after both were read (the
    connection must never be left with an unread reply)."""
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(connection.pack_commands([first, second]), check_health=False)
        replies: list[Any] = []
        for _ in range(2):
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:  # the reply itself was read: the connection is in sync
                replies.append(error)
        return replies
    except BaseException:
        # A write or read that did not finish (an error, a cancellation): the connection's state is
        # unknown, so it is closed before it goes back to the pool.
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)


async def reserve_with_hit(
    client: Any, reserve: Any, *, keys: list[str], args: list[Any], hit: SharedHit
) -> tuple[Any, Any]:
    """(the rate-limit script's reply, the reservation script's reply); a Redis error is raised."""
    hit_reply, reserve_reply = await _send_both(
        client,
        ("EVALSHA", hit.script.sha, len(hit.keys), *hit.keys, *hit.args),
        ("EVALSHA", reserve.sha, len(keys), *keys, *args),
    )
    if isinstance(hit_reply, NoScriptError):
        hit_reply = await hit.script(keys=hit.keys, args=hit.args)
    if isinstance(reserve_reply, NoScriptError):
        reserve_reply = await reserve(keys=keys, args=args)
    for reply in (hit_reply, reserve_reply):
        if isinstance(reply, Exception):
            raise reply
    return hit_reply, reserve_reply
