"""`GatewayConnectionPool` (security/redis_pool.py) on our own redis-server: a connection released while
nobody waits is handed out again without the blocking checkout, `max_connections` still bounds every
connection, a waiting caller gets the next connection released, and closing the pool closes the idle ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llm_api.security.redis_link import blocking_pool
from llm_api.security.redis_pool import GatewayConnectionPool
from tests.test_ratelimit import own_redis


@pytest.fixture
async def pool() -> AsyncIterator[GatewayConnectionPool]:
    with own_redis() as (port, _):
        created = blocking_pool(f"redis://127.0.0.1:{port}", max_connections=2, timeout_s=2)
        assert isinstance(created, GatewayConnectionPool)
        yield created
        await created.disconnect()


async def test_a_free_connection_is_handed_out_again_from_the_idle_stack(pool: GatewayConnectionPool) -> None:
    first = await pool.get_connection()
    await pool.release(first)
    # Kept by us, not put back into redis-py's pool: the next checkout is a list pop.
    assert pool._idle == [first] and not pool._available_connections
    again = await pool.get_connection()
    assert again is first and pool._idle == []
    await again.send_command("PING")
    assert await again.read_response() == b"PONG"
    await pool.release(again)


async def test_max_connections_still_bounds_them_and_a_waiting_caller_gets_the_next_one(
    pool: GatewayConnectionPool,
) -> None:
    first, second = await pool.get_connection(), await pool.get_connection()
    third = asyncio.ensure_future(pool.get_connection())
    done, _ = await asyncio.wait({third}, timeout=0.3)
    assert not done  # two connections at most: the third caller waits in the pool
    await pool.release(second)  # someone waits: the connection goes to them, not onto the idle stack
    assert await asyncio.wait_for(third, timeout=2) is second
    assert pool._idle == []
    await pool.release(first)
    await pool.release(second)
    assert len(pool._idle) == 2


async def test_disconnect_closes_the_idle_connections_too(pool: GatewayConnectionPool) -> None:
    connection = await pool.get_connection()
    await pool.release(connection)
    assert connection.is_connected
    await pool.disconnect()
    assert not connection.is_connected and pool._idle == []
