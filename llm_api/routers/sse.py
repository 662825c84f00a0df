"""A Server-Sent Events response that flushes every event, pings while upstream is silent, and
cancels the upstream as soon as the client disconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

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
        started = False
        pacer = _Pacer(send, self.ping_interval_s)

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

        try:
            try:
                chunk = await self._first_event(start, pacer)
            except StopAsyncIteration:
                chunk = b""
            except GatewayError as exc:
                if not started:
                    await self.error_response(exc)(scope, receive, send)
                    return
                await pacer.write(self.error_event(exc))
                await pacer.end()  # under the pacer's lock, as every write: a ping may be due meanwhile
                return
            if not started:
                await start()
                pacer.keepalive()
            if chunk:
                await pacer.write(chunk)
            try:
                async for chunk in self.events:
                    await pacer.write(chunk)
            except GatewayError as exc:
                await pacer.write(self.error_event(exc))
            except Exception as exc:
                # The text can quote request data: log the type only.
                log.error("stream failed", extra={"exception_type": type(exc).__name__})
                await pacer.write(self.error_event(GatewayError("the stream failed inside the gateway")))
            await pacer.end()
        finally:
            pacer.stop()

    async def _first_event(self, start: Callable[[], Awaitable[None]], pacer: _Pacer) -> bytes:
        """The first event, awaited as a task so that the response can start with a ping while upstream
        is late, without cancelling it. A frame of its own: once it returns nothing holds the task (and
        its wait's sets), which the relay's frame kept for as long as the stream lasted (~1 KiB each)."""
        first: asyncio.Future[bytes] = asyncio.ensure_future(anext(self.events))
        try:
            done, _ = await asyncio.wait({first}, timeout=self.ping_interval_s)
            if not done:
                await start()
                await pacer.write(PING)
                pacer.keepalive()
            return await first
        finally:
            if not first.done():
                # The first step still runs the generator: let it unwind before anyone closes it.
                first.cancel()
                await asyncio.wait({first})


class _Pacer:
    """Writes a stream's body chunks one at a time and pings when nothing was written for an interval.

    The keep-alive is a timer, not a task per stream: a task (its frame, its sleep future and timer) would
    live as long as the stream, while the timer is one handle, re-armed for the time left since the last
    write; a task exists only for the moment a ping is being written. An object rather than closures: the
    closures that re-armed themselves (and each other) formed a reference cycle holding the whole request
    (its send chain, spans and context) until the cyclic GC found it, ~70 objects per stream.
    """

    __slots__ = ("_interval_s", "_last_sent", "_lock", "_loop", "_pinger", "_send", "_timer")

    def __init__(self, send: Send, interval_s: float) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._interval_s = interval_s
        self._lock = asyncio.Lock()
        self._last_sent = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._pinger: asyncio.Task[None] | None = None

    async def write(self, chunk: bytes) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            self._last_sent = self._loop.time()

    async def end(self) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def keepalive(self) -> None:
        # Called at the start and then only by the timer or at the end of a ping, so no other ping is
        # pending. The ping is due when `loop.time() >= last_sent + interval`, the same sum on both sides:
        # `now - last_sent >= interval` can disagree with it by one rounding, and on uvloop's millisecond
        # clock that boundary is hit often (the ping then skipped its write and the keep-alive stopped).
        self._timer = None
        due, now = self._last_sent + self._interval_s, self._loop.time()
        if now < due:
            self._timer = self._loop.call_later(due - now, self.keepalive)
        else:
            self._pinger = self._loop.create_task(self._ping())

    async def _ping(self) -> None:
        if self._loop.time() >= self._last_sent + self._interval_s:  # no event was written meanwhile
            await self.write(PING)
        self._pinger = None
        self.keepalive()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pinger is not None:
            self._pinger.cancel()
            self._pinger = None
