"""Pure ASGI middleware: request id, body-size limit, access log, and the last-resort 500."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_api.error_handlers import ANTHROPIC, render_error, wire_format_for
from llm_api.errors import PayloadTooLarge
from llm_api.utils.context import RequestContext, current_request

access_log = logging.getLogger("llm_api.access")
error_log = logging.getLogger("llm_api.errors")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
QUIET_PATHS = frozenset({"/healthz", "/readyz"})
CLIENT_CLOSED_REQUEST = 499  # the status nginx logs for a client that went away


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _context_headers(
    context: RequestContext, present: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The context's response headers (X-RateLimit-*) that the response does not already carry."""
    if not context.response_headers:
        return []
    names = {bytes(name).lower() for name, _ in present}
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in context.response_headers.items()
        if name.lower().encode("latin-1") not in names
    ]


class RequestContextMiddleware:
    """Gives every HTTP request an id and a context, limits its body, and writes one access line."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller_id = _header(scope, b"x-request-id")
        request_id = (
            caller_id.decode("ascii")
            if caller_id is not None and _REQUEST_ID.match(caller_id)
            else uuid.uuid4().hex
        )
        context = RequestContext(
            request_id=request_id, started=time.perf_counter(), wire_format=wire_format_for(scope)
        )
        token = current_request.set(context)
        status = 0
        response_started = False
        id_headers = [(b"x-request-id", request_id.encode("ascii"))]
        if context.wire_format == ANTHROPIC:
            id_headers.append((b"request-id", request_id.encode("ascii")))  # the anthropic SDK reads it

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    *id_headers,
                    *_context_headers(context, message.get("headers", ())),
                ]
            await send(message)

        async def reply(status_code: int, error_type: str, message: str) -> None:
            status_code, payload = render_error(
                status_code, error_type, message, wire_format=context.wire_format
            )
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": status_code,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": orjson.dumps(payload)})

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                context.error_type = PayloadTooLarge.error_type
                await reply(413, PayloadTooLarge.error_type, self._too_large())
                return
            await self.app(scope, self._limited(receive), send_with_id)
        except ClientDisconnect:
            # The client hung up before its request was read: nothing to answer, nothing went wrong here.
            context.error_type = "client_disconnected"
        except Exception as exc:
            # The exception text can quote request data: log its type only.
            error_log.error("unhandled error", extra={"exception_type": type(exc).__name__})
            if not response_started:
                context.error_type = "internal_error"
                await reply(500, "internal_error", "the gateway failed to handle this request")
        finally:
            current_request.reset(token)
            if context.error_type == "client_disconnected" and not response_started:
                status = CLIENT_CLOSED_REQUEST
            self._log_access(scope, context, status)

    def _too_large(self) -> str:
        return f"request body exceeds {self.max_body_bytes} bytes"

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(self._too_large())
            return message

        return limited_receive

    @staticmethod
    def _log_access(scope: Scope, context: RequestContext, status: int) -> None:
        path: str = scope.get("path", "")
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        access_log.log(
            level,
            "request",
            extra={
                "request_id": context.request_id,
                "key_id": context.key_id,
                "method": scope.get("method"),
                "path": path,
                "status": status,
                "model": context.model,
                "provider": context.provider,
                "stream": context.stream,
                "attempts": context.attempts,
                "input_tokens": context.input_tokens,
                "output_tokens": context.output_tokens,
                "latency_ms": round((time.perf_counter() - context.started) * 1000, 3),
                "ttft_ms": round(context.ttft_ms, 3) if context.ttft_ms is not None else None,
                "error_type": context.error_type,
                **({"route": context.route, "fallbacks": context.fallbacks} if context.route else {}),
            },
        )
