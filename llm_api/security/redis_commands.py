"""Lua scripts on a pooled connection through redis-py's connection API: the hot path's Redis calls.

redis-py's command layer (`Redis.execute_command`, `Pipeline`) wraps every call in retries, deprecation
checks, observability hooks and response callbacks, ~30 µs of CPU per call here, more than the call's
own work; our calls are EVALSHA of registered scripts whose replies need no callback, and retries are the
link's business (`RedisLink`). A script Redis does not know (NOSCRIPT: a restart, a SCRIPT FLUSH) is sent
again through redis-py's script object, which loads it. Clients other than a plain or Sentinel-primary
`Redis` (a Cluster) use redis-py's own calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError


def on_one_connection(client: Any) -> bool:
    """Can several commands of `client` share one pooled connection (not a Cluster)?"""
    return isinstance(client, Redis)


async def send_commands(client: Any, *commands: tuple[Any, ...]) -> list[Any]:
    """The replies to `commands`, written together on one pooled connection; an error reply is returned in
    its place once every reply was read (the connection is never left with a reply unread)."""
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(packed(commands, connection.encoder), check_health=False)
        replies: list[Any] = []
        for _ in commands:
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


def packed(commands: Iterable[tuple[Any, ...]], encoder: Any) -> bytes:
    """`commands` in the Redis protocol, as redis-py's `Connection.pack_commands` writes them (its encoder
    for the values), in one buffer: ours are a few short arguments each, and its general packer (chunking
    for large values, command names of several words) took ~11 µs a command here against ~5."""
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for value in command:
            kind = type(value)
            if kind is str:
                data = value.encode(encoder.encoding, encoder.encoding_errors)
            elif kind is int or kind is float:
                data = repr(value).encode()
            else:  # bytes as they are; anything else is refused as redis-py refuses it (DataError)
                data = bytes(encoder.encode(value))
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def evalsha(script: Any, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


async def settled_reply(reply: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """`reply` to `evalsha(script, ...)`, the script loaded and run again after NOSCRIPT; errors raised."""
    if isinstance(reply, NoScriptError):
        reply = await script(keys=keys, args=args)
    if isinstance(reply, Exception):
        raise reply
    return reply


async def run_script(client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """`script(keys=keys, args=args)` (a registered redis-py script) without the command layer."""
    if not on_one_connection(client):
        return await script(keys=keys, args=args)
    [reply] = await send_commands(client, evalsha(script, keys, args))
    return await settled_reply(reply, script, keys, args)
