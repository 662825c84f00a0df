"""Stop paying for an answer nobody will read: cancel the upstream work when the client hangs up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

T = TypeVar("T")


class CancelOnDisconnect:
    """While inside, the current task is cancelled as soon as the client disconnects; that cancellation
    (ours) ends the block quietly with `gone` set, any other cancellation propagates.

    Use it once the request body has been read: from then on it is the only reader of `receive`.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.gone = False

    async def __aenter__(self) -> CancelOnDisconnect:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self.gone = True
                    self._task.cancel()
                    return
        except asyncio.CancelledError:
            # Only `__aexit__` cancels the watcher. Ending quietly instead of as a cancelled task matters:
            # a cancelled task keeps its CancelledError, whose traceback holds this frame, `self` and the
            # watcher task again, a cycle that kept each request's whole object graph (the request cycle,
            # its spans, the context) for the cyclic GC to find (~50 objects per request).
            return

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self._watcher.cancel()
        return exc_type is asyncio.CancelledError and self.gone and self._task.uncancel() == 0


async def unless_disconnected(request: Request, operation: Awaitable[T]) -> T:
    """Await `operation`; if the client disconnects first, cancel it and raise ClientDisconnect."""
    async with CancelOnDisconnect(request.receive):
        return await operation
    raise ClientDisconnect()  # only reached when the block ended on the client's disconnect
