"""A finished request leaves no reference cycle behind: its objects are freed as soon as it ends.

What a cycle costs: each request's whole object graph (the ASGI cycle, the send chain, its spans, its
context) stayed allocated until the cyclic GC found it, so the GC ran every ~100 requests, paused the
worker each time (10-19 ms at most, seen under load) and held memory meanwhile. The two sources found were
the disconnect watcher (a cancelled task keeps its CancelledError, whose traceback holds the watcher's frame
and through it the task) and the SSE keep-alive's closures (re-arming themselves and each other). These
tests drive the same objects the routes use and look for them among the GC's unreachable objects.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest

from llm_api.routers.disconnect import CancelOnDisconnect
from llm_api.routers.sse import PING, SSEResponse
from tests.support import async_wait_until

ROUNDS = 20


@pytest.fixture
def no_gc() -> Iterator[None]:
    """No automatic collection while the test runs: whatever is in a cycle is still there at the end."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def unreachable(*kinds: type) -> list[Any]:
    """The objects of `kinds` that only the cyclic GC could free (gc.DEBUG_SAVEALL keeps them to look at)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return [obj for obj in gc.garbage if isinstance(obj, kinds)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def _never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


def _only_this_task_left() -> bool:
    """Every other task (the watchers, cancelled; the pings) has run to its end."""
    return asyncio.all_tasks() == {asyncio.current_task()}


def test_the_disconnect_watcher_leaves_no_cycle(no_gc: None) -> None:
    async def requests() -> None:
        for _ in range(ROUNDS):
            listening = asyncio.Event()

            async def receive() -> dict[str, Any]:
                listening.set()
                return await _never_disconnects()

            async with CancelOnDisconnect(receive):
                # The watcher is waiting on `receive` when the block ends: it is cancelled from there.
                await asyncio.wait_for(listening.wait(), timeout=5)
        await async_wait_until(_only_this_task_left, timeout=5, interval=0.001)

    asyncio.run(requests())
    assert unreachable(CancelOnDisconnect, asyncio.CancelledError) == []


async def _events(bodies: list[bytes]) -> AsyncGenerator[bytes, None]:
    """Three events, each after a keep-alive ping: the timer fired and a ping was written in between."""
    for n in range(3):
        if n:
            await async_wait_until(lambda: bodies[-1] == PING, timeout=5, interval=0.001)
        yield f"data: {n}\n\n".encode()


def test_a_finished_stream_leaves_no_cycle(no_gc: None) -> None:
    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def streams() -> None:
        for _ in range(ROUNDS):
            response = SSEResponse(
                _events(bodies),
                ping_interval_s=0.001,
                error_response=lambda exc: None,  # type: ignore[arg-type,return-value]
                error_event=lambda exc: b"",
            )
            await response({"type": "http", "method": "POST"}, _never_disconnects, send)  # type: ignore[arg-type]
        await async_wait_until(_only_this_task_left, timeout=5, interval=0.001)

    asyncio.run(streams())
    assert bodies.count(b"data: 2\n\n") == ROUNDS  # every stream ran to its end
    assert bodies.count(PING) >= 2 * ROUNDS  # and pinged between its events
    assert unreachable(SSEResponse, CancelOnDisconnect) == []
