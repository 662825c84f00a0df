"""A Server-Sent Events response that flushes every event, pings while upstream is silent, and
cancels the upstream as soon as the client disconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llm_api.errors import GatewayError
from llm_api.routers.disconnect import CancelOnDisconnect
from llm_api.utils.context import request_context

log = logging.getLogger("llm_api.stream")

PING = b": ping\n\n"
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class SSEResponse(Response):
    """Relays `events` (already-encoded SSE bytes).

    An error raised before the first event becomes a plain JSON error response with its own status;
    once the stream has begun, it is encoded as one SSE event by `error_event`.
    """

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        *,
        ping_interval_s: float,
        error_response: Callable[[GatewayError], Response],
        error_event: Callable[[GatewayError], bytes],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.events = events
        self.ping_interval_s = ping_interval_s
        self.error_response = error_response
        self.error_event = error_event
        self.status_code = 200
        self.background = None
        self.extra_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with CancelOnDisconnect(receive) as watch:
                await self._relay(scope, receive, send)
            if watch.gone:
                context = request_context()
                if context is not None:
                    context.error_type = "client_disconnected"
        finally:
            await self.events.aclose()

    async def _relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[bytes] = asyncio.ensure_future(anext(self.events))
        try:
            done, _ = await asyncio.wait({first}, timeout=self.ping_interval_s)
        except BaseException:
            first.cancel()
            await asyncio.wait({first})  # let the generator unwind before it is closed
            raise
        started = False
        lock = asyncio.Lock()
        last_sent = loop.time()

        async def start() -> None:
            nonlocal started
            started = True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*SSE_HEADERS, *self.extra_headers],
                }
            )

        async def write(chunk: bytes) -> None:
            nonlocal last_sent
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                last_sent = loop.time()

        # The keep-alive is a timer, not a task per stream: a task (its frame, its sleep future and timer)
        # would live as long as the stream, while the timer is one handle, re-armed for the time left
        # since the last write; a task exists only for the moment a ping is being written.
        timer: asyncio.TimerHandle | None = None
        pinger: asyncio.Task[None] | None = None

        def keepalive() -> None:
            # Called at the start and then only by the timer or at the end of a ping, so no other ping is
            # pending. The ping is due when `loop.time() >= last_sent + interval`, the same sum on both
            # sides: `now - last_sent >= interval` can disagree with it by one rounding, and on uvloop's
            # millisecond clock that boundary is hit often (the ping then skipped its write and the
            # keep-alive stopped).
            nonlocal timer, pinger
            timer = None
            due, now = last_sent + self.ping_interval_s, loop.time()
            if now < due:
                timer = loop.call_later(due - now, keepalive)
            else:
                pinger = loop.create_task(ping())

        async def ping() -> None:
            if loop.time() >= last_sent + self.ping_interval_s:  # no event was written meanwhile
                await write(PING)
            keepalive()

        try:
            if not done:
                await start()
                await write(PING)
                keepalive()
            try:
                chunk = await first
            except StopAsyncIteration:
                chunk = b""
            except GatewayError as exc:
                if not started:
                    await self.error_response(exc)(scope, receive, send)
                    return
                await write(self.error_event(exc))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if not started:
                await start()
                keepalive()
            if chunk:
                await write(chunk)
            try:
                async for chunk in self.events:
                    await write(chunk)
            except GatewayError as exc:
                await write(self.error_event(exc))
            except Exception as exc:
                # The text can quote request data: log the type only.
                log.error("stream failed", extra={"exception_type": type(exc).__name__})
                await write(self.error_event(GatewayError("the stream failed inside the gateway")))
            async with lock:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if timer is not None:
                timer.cancel()
            if pinger is not None:
                pinger.cancel()
            if not first.done():
                # The first step still runs the generator: let it unwind before anyone closes it.
                first.cancel()
                await asyncio.wait({first})
