"""The hot path's Redis calls on redis-py's connection API (`security.redis_commands`), on our own
redis-server: replies come back in order, an error reply never leaves a reply unread on the pooled
connection, a forgotten script is loaded again, and a cancelled call closes its connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from llm_api.security.redis_commands import run_script, send_commands
from llm_api.security.redis_link import blocking_pool
from tests.support import async_wait_until
from tests.test_ratelimit import own_redis


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    with own_redis() as (port, _):
        # One connection: whatever one call leaves on it, the next call reads.
        redis = Redis(
            connection_pool=blocking_pool(f"redis://127.0.0.1:{port}", max_connections=1, timeout_s=2)
        )
        yield redis
        await redis.aclose()


async def test_replies_come_back_in_order_and_errors_in_their_place(client: Redis) -> None:
    replies = await send_commands(client, ("SET", "a", "1"), ("EVALSHA", "0" * 40, 0), ("GET", "a"))
    assert replies[0] == b"OK"  # raw replies: no response callbacks
    assert isinstance(replies[1], NoScriptError)
    assert replies[2] == b"1"
    assert await send_commands(client, ("INCR", "a")) == [2]  # nothing left unread on the connection


async def test_a_forgotten_script_is_loaded_again(client: Redis) -> None:
    script = client.register_script("return tonumber(ARGV[1]) + redis.call('INCR', KEYS[1])")
    assert await run_script(client, script, ["n"], [10]) == 11
    await client.script_flush()
    assert await run_script(client, script, ["n"], [10]) == 12


async def test_a_script_error_is_raised_and_the_connection_stays_usable(client: Redis) -> None:
    script = client.register_script("return redis.error_reply('refused')")
    with pytest.raises(ResponseError, match="refused"):
        await run_script(client, script, [], [])
    assert await send_commands(client, ("PING",)) == [b"PONG"]


async def test_a_cancelled_call_closes_its_connection(client: Redis) -> None:
    watcher = Redis(connection_pool=blocking_pool(_url(client), max_connections=1, timeout_s=2))
    call = asyncio.ensure_future(send_commands(client, ("BLPOP", "never-pushed", 1)))

    async def blocked() -> bool:
        return b"cmd=blpop" in await watcher.execute_command("CLIENT", "LIST")

    await async_wait_until(blocked, timeout=5)  # the server holds the reply for up to a second
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The late reply must not be read as the answer to the next command.
    assert await send_commands(client, ("ECHO", "next")) == [b"next"]
    await watcher.aclose()


def _url(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}"


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    """`packed` writes the bytes redis-py's own packer writes, for every kind of value it accepts (str,
    non-ASCII included, int, float, bytes), and refuses what redis-py refuses."""
    from redis.asyncio import Connection
    from redis.exceptions import DataError

    from llm_api.security.redis_commands import packed

    connection = Connection()
    commands = [
        ("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", 2, "{k}:tok", "{k}:ré", "id-1", 1000, -1),
        ("EVALSHA", "abc", 0, 0.25, 1e-9, b"\x00raw\r\n", "", 2**70),
    ]
    assert packed(commands, connection.encoder) == b"".join(connection.pack_commands(commands))
    for bad in (True, None, object()):
        with pytest.raises(DataError):
            packed([("EVALSHA", "abc", 0, bad)], connection.encoder)
