"""One HTTP exchange at the raw ASGI level: reading, answering, streaming, dropping.

Disconnect detection: once the request body has been read, a watcher task keeps calling
``receive()``; the ASGI server answers ``http.disconnect`` as soon as the client goes away,
which sets :attr:`Exchange.disconnected`. Every wait in the emulator races that event, so a
departed client stops generation and is recorded as ``client_disconnected`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from llm_api.emulator.state import RequestRecord

JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream; charset=utf-8"
_DISCONNECT_GRACE_S = 1.0


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """Read the whole request body. Returns (body, client_disconnected)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def lower_headers(scope: Scope) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def encode_headers(content_type: bytes, extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type)]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return headers


async def send_plain_json(send: Send, status: int, payload: Any) -> None:
    """Answer a JSON document (used by the control plane; no recording)."""
    body = orjson.dumps(payload)
    headers = encode_headers(JSON_TYPE, {"content-length": str(len(body))})
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Exchange:
    """A recorded upstream request/response with disconnect-aware waiting and sending."""

    def __init__(self, receive: Receive, send: Send, record: RequestRecord) -> None:
        self._receive = receive
        self._send = send
        self.record = record
        self.disconnected = asyncio.Event()
        self._finished = False
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start_watching(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message: Message = await self._receive()
            if message["type"] == "http.disconnect":
                # After a complete response the server also reports http.disconnect.
                if not self._finished:
                    self.mark_disconnected()
                return

    def mark_disconnected(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected.set()
            if self.record.disconnected_at is None:
                self.record.disconnected_at = time.time()
            self.record.finish("client_disconnected")

    async def close(self) -> None:
        """Stop the watcher; a record still in progress counts as an emulator error."""
        await self._stop_watcher()
        self.record.finish("error")

    async def _stop_watcher(self) -> None:
        self._finished = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    @property
    def gone(self) -> bool:
        return self.disconnected.is_set()

    # -- waiting -----------------------------------------------------------------------
    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the client leaves first. Returns True if the client is still there."""
        if self.gone:
            return False
        if seconds <= 0:
            await asyncio.sleep(0)
            return not self.gone
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.disconnected.wait()
        return not self.gone

    async def wait_for_disconnect(self) -> None:
        await self.disconnected.wait()

    # -- answering ---------------------------------------------------------------------
    async def _safe_send(self, message: Message) -> bool:
        if self.gone:
            return False
        try:
            await self._send(message)
        except OSError:
            self.mark_disconnected()
            return False
        return not self.gone

    async def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Answer a complete JSON response; outcome ``completed`` (2xx) or ``error``."""
        body = orjson.dumps(payload)
        all_headers = {**(headers or {}), "content-length": str(len(body))}
        self.record.status = status
        self._finished = True
        ok = await self._safe_send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": encode_headers(JSON_TYPE, all_headers),
            }
        )
        if ok:
            ok = await self._safe_send({"type": "http.response.body", "body": body})
        if ok:
            self.record.finish("completed" if status < 400 else "error")

    async def start_stream(self, headers: dict[str, str] | None = None) -> bool:
        self.record.status = 200
        merged = {"cache-control": "no-cache", **(headers or {})}
        return await self._safe_send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": encode_headers(SSE_TYPE, merged),
            }
        )

    async def send_event(self, data: bytes) -> bool:
        """Send one SSE frame (already formatted). Returns False if the client has gone."""
        return await self._safe_send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self, *, failed: bool = False) -> None:
        self._finished = True
        if await self._safe_send({"type": "http.response.body", "body": b""}):
            self.record.finish("error" if failed else "completed")

    async def drop(self) -> None:
        """Close the TCP connection without sending any response bytes.

        The ASGI spec has no message for this, so we reach the server's transport: uvicorn
        passes ``RequestResponseCycle.send`` (a bound method whose object has ``transport``)
        for both its httptools and h11 protocols. ``transport.abort()`` closes the socket
        immediately; clients see "Server disconnected without sending a response".
        Then we wait until the server reports the disconnect so that uvicorn neither logs
        "returned without starting response" nor tries to send a 500.
        """
        self.record.finish("error")
        await self._stop_watcher()
        transport = getattr(getattr(self._send, "__self__", None), "transport", None)
        if transport is None or not hasattr(transport, "abort"):
            # Unknown server: the best we can do is fail the app (server answers 500/closes).
            raise RuntimeError("emulator: cannot drop the connection on this ASGI server")
        transport.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_DISCONNECT_GRACE_S):
                while (await self._receive())["type"] != "http.disconnect":
                    pass


def sse_frame(data: Any, event: str | None = None) -> bytes:
    """Format one server-sent event; ``data`` is JSON-encoded unless it is already bytes."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
