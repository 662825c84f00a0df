"""redis-py's blocking pool, with a fast path for a connection that is free while nobody waits.

redis-py 8's `BlockingConnectionPool` takes its condition, arms an `asyncio.timeout` (a timer scheduled and
cancelled), awaits `wait_for`, takes a second lock and records its observability timings (two more
coroutines) for every checkout, and the condition again on every release: ~20 us of CPU per checkout
and release here, two per request (the timeout alone was 5 % of a worker's CPU in the profile). Here a
connection released while no caller is waiting goes onto an idle stack instead, and a checkout takes from
that stack first: the pool's own check of the connection (`ensure_connection`) still runs, the rest is a
list pop (~2 us). Idle connections stay counted as in use by the pool, so `max_connections` still bounds
them all, and a caller that has to wait gets the next connection released, as before: nothing is kept
idle while anyone waits in the pool.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection

# types-redis describes redis-py 4 (no `ensure_connection`, a generic pool): the pool is typed from here.
_BlockingPool: Any = BlockingConnectionPool


class GatewayConnectionPool(_BlockingPool):  # type: ignore[misc]  # an untyped base (above)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[AbstractConnection] = []
        self._waiting = 0  # callers inside the blocking checkout

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        connection: AbstractConnection
        if self._idle:
            connection = self._idle.pop()
            try:
                await self.ensure_connection(connection)
            except BaseException:
                await super().release(connection)
                raise
            return connection
        self._waiting += 1
        try:
            connection = await super().get_connection()
        finally:
            self._waiting -= 1
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        if not self._waiting and connection.is_connected:
            self._idle.append(connection)
            return
        await super().release(connection)

    def reset(self) -> None:  # the base forgets every connection: so does the idle stack
        self._idle = []
        super().reset()

    async def disconnect(self, inuse_connections: bool = True) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await super().release(connection)
        await super().disconnect(inuse_connections)
