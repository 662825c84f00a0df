"""The SSE keep-alive in process: pings keep coming for as long as the stream is silent, on any clock.

uvloop's clock moves in whole milliseconds, so "time since the last write" often equals the ping interval
exactly; the timer and the ping must agree on that boundary, or the pings stop after the first one
(seen through the real gateway in tests/test_streaming.py::test_slow_first_token_gets_pings).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator
from typing import Any

from llm_api.routers.sse import PING, SSEResponse

INTERVAL_S = 0.05
SILENCE_S = 1.0


class MillisecondClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock ticks in whole milliseconds, like uvloop's."""

    def time(self) -> float:
        return math.floor(super().time() * 1000) / 1000


async def _silent_then_one_event() -> AsyncGenerator[bytes, None]:
    await asyncio.sleep(SILENCE_S)
    yield b"data: late\n\n"


async def _bodies() -> list[bytes]:
    sent: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never hangs up
        return {"type": "http.disconnect"}

    response = SSEResponse(
        _silent_then_one_event(),
        ping_interval_s=INTERVAL_S,
        error_response=lambda exc: None,  # type: ignore[arg-type,return-value]
        error_event=lambda exc: b"",
    )
    await response({"type": "http", "method": "POST"}, receive, send)  # type: ignore[arg-type]
    return sent


def test_pings_continue_through_a_long_silence_on_a_millisecond_clock() -> None:
    loop = MillisecondClockLoop()
    try:
        bodies = loop.run_until_complete(_bodies())
    finally:
        loop.close()
    pings = bodies.index(b"data: late\n\n")
    assert bodies[:pings] == [PING] * pings
    # One ping per interval of silence, give or take the loop's scheduling (never just the first one).
    assert pings >= SILENCE_S / INTERVAL_S / 2, pings
