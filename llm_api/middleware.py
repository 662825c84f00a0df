"""Pure ASGI middleware: request id, body-size limit, access log, ledger row, and the last-resort 500."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llm_api.error_handlers import ANTHROPIC, render_error, wire_format_for
from llm_api.errors import PayloadTooLarge
from llm_api.store.ledger import UsageRow
from llm_api.store.writer import LedgerWriter
from llm_api.utils.context import RequestContext, current_request

access_log = logging.getLogger("llm_api.access")
error_log = logging.getLogger("llm_api.errors")

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
QUIET_PATHS = frozenset({"/healthz", "/readyz"})
# Every API endpoint gets a ledger row, except the reads of usage itself (and the model list).
LEDGER_PREFIX = "/v1/"
NOT_LEDGERED = frozenset({"/v1/usage"})
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
            else secrets.token_hex(16)  # 32 hex digits, as uuid4().hex, at a quarter of its cost
        )
        context = RequestContext(
            request_id=request_id, started=time.perf_counter(), wire_format=wire_format_for(scope)
        )
        path: str = scope.get("path", "")
        if path.startswith(LEDGER_PREFIX) and path not in NOT_LEDGERED:
            context.endpoint = path
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
            if context.unsettled is not None:
                close, context.unsettled = context.unsettled, None
                await _close_unsettled(close)
            current_request.reset(token)
            if context.error_type == "client_disconnected" and not response_started:
                status = CLIENT_CLOSED_REQUEST
            latency_ms = round((time.perf_counter() - context.started) * 1000, 3)
            self._log_access(scope, context, status, latency_ms)
            self._record_usage(scope, context, status, latency_ms)

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
    def _log_access(scope: Scope, context: RequestContext, status: int, latency_ms: float) -> None:
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
                "latency_ms": latency_ms,
                "ttft_ms": round(context.ttft_ms, 3) if context.ttft_ms is not None else None,
                "error_type": context.error_type,
                **({"route": context.route, "fallbacks": context.fallbacks} if context.route else {}),
                **({"cache_hit": True} if context.cache_hit else {}),
            },
        )

    @staticmethod
    def _record_usage(scope: Scope, context: RequestContext, status: int, latency_ms: float) -> None:
        app = scope.get("app")
        writer: LedgerWriter | None = getattr(getattr(app, "state", None), "ledger_writer", None)
        if writer is None or context.endpoint is None:
            return
        writer.record(ledger_row(context, status=status, latency_ms=latency_ms))


async def _close_unsettled(close: Callable[[], Awaitable[None]]) -> None:
    """A reservation that nothing settled or released (a stream torn down before it ever ran)."""
    try:
        await asyncio.shield(asyncio.ensure_future(close()))
    except Exception as exc:  # it expires by itself (SPEND_RESERVATION_TTL_S)
        error_log.warning("reservation left to expire", extra={"exception_type": type(exc).__name__})


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def ledger_row(context: RequestContext, *, status: int, latency_ms: float) -> UsageRow:
    """The usage ledger's row for a finished request: counts, ids and timings, never any text."""
    cost = context.cost_usd
    if cost is not None and not isinstance(cost, Decimal):
        cost = Decimal(str(cost))
    return UsageRow(
        request_id=context.request_id,
        time=dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=latency_ms),
        key_id=context.key_id,
        endpoint=_clip(context.endpoint, 200) or "",
        model_requested=_clip(context.model, 200),
        model_served=_clip(context.model_served, 200),
        provider=_clip(context.provider, 50),
        stream=context.stream,
        status=status,
        error_type=_clip(context.error_type, 100),
        input_tokens=context.input_tokens,
        output_tokens=context.output_tokens,
        cache_read_tokens=context.cache_read_tokens,
        cache_write_tokens=context.cache_write_tokens,
        cost_usd=cost,
        price_version=_clip(context.price_version, 100),
        usage_estimated=context.usage_estimated,
        attempts=context.attempts,
        latency_ms=latency_ms,
        ttft_ms=context.ttft_ms,
        cache_hit=context.cache_hit,
    )
