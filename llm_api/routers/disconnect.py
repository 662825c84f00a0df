"""Stop paying for an answer nobody will read: cancel the upstream call when the client hangs up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

T = TypeVar("T")


async def _wait_for_disconnect(receive: Receive, task: asyncio.Task[object], gone: list[bool]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
            task.cancel()
            return


async def unless_disconnected(request: Request, operation: Awaitable[T]) -> T:
    """Await `operation` (the request body already read); if the client disconnects first, cancel it
    and raise ClientDisconnect."""
    task = asyncio.current_task()
    assert task is not None
    gone: list[bool] = []
    watcher = asyncio.create_task(_wait_for_disconnect(request.receive, task, gone))
    try:
        return await operation
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientDisconnect() from None
        raise
    finally:
        watcher.cancel()
