"""The one place where exceptions become HTTP responses, in the error format of the endpoint called.

- gateway (`/v1/chat`, `/admin`, everything else): `{"error": {"type", "message", "request_id"}}`;
- openai (`/v1/chat/completions`, other `/v1/*` routes without `anthropic-version`):
  `{"error": {"message", "type", "param", "code"}}`, `code` being the gateway's own error type;
- anthropic (`/v1/messages*`, `/v1/*` with `anthropic-version`):
  `{"type": "error", "error": {"type", "message"}, "request_id"}`.
On the two vendor formats a validation failure is a 400 (their APIs' status; `/v1/chat` keeps its 422).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from llm_api.codecs import anthropic_messages, openai_chat
from llm_api.errors import GatewayError, InvalidRequest, UnsupportedParameter
from llm_api.utils.context import request_context

GATEWAY = "gateway"
OPENAI = "openai"
ANTHROPIC = "anthropic"


def wire_format_for(scope: Scope) -> str:
    """Which error format a request expects, from its path (and `anthropic-version` header)."""
    path: str = scope.get("path", "")
    if path.startswith("/v1/messages"):
        return ANTHROPIC
    if path == "/v1/chat" or not path.startswith("/v1/"):
        return GATEWAY
    if any(name == b"anthropic-version" for name, _ in scope.get("headers", ())):
        return ANTHROPIC
    return OPENAI


def _request_id() -> str | None:
    context = request_context()
    return context.request_id if context is not None else None


def _wire_format() -> str:
    context = request_context()
    return context.wire_format if context is not None else GATEWAY


def error_payload(
    error_type: str, message: str, *, details: list[dict[str, object]] | None = None
) -> dict[str, Any]:
    """The gateway format's body."""
    body: dict[str, Any] = {"type": error_type, "message": message, "request_id": _request_id()}
    if details:
        body["details"] = details
    return {"error": body}


def _loc(detail: Mapping[str, object]) -> str:
    """A detail's field as a dotted path (`messages.0.content`); codecs may give it as a string."""
    loc = detail.get("loc")
    if isinstance(loc, list | tuple):
        return ".".join(str(part) for part in loc)
    return str(loc) if loc else ""


def render_error(
    status: int,
    error_type: str,
    message: str,
    *,
    wire_format: str,
    details: list[dict[str, object]] | None = None,
    param: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """The status and body of an error in `wire_format` (validation failures become 400 on the vendor
    formats, as their APIs answer)."""
    if wire_format == GATEWAY:
        return status, error_payload(error_type, message, details=details)
    if status == 422:
        status = 400
    detail = details[0] if details else None
    first = _loc(detail) if detail is not None else ""
    if detail is not None and first and first not in message:
        # The codecs' messages already name the field; the gateway's own (a query parameter) may not.
        message = f"{message} ({first}: {detail.get('msg')})"
    if wire_format == OPENAI:
        kind = openai_chat.error_type_for_status(status)
        return status, openai_chat.error_body(
            message, type=kind, param=param or first or None, code=error_type
        )
    kind = anthropic_messages.error_type_for_status(status)
    return status, anthropic_messages.error_body(kind, message, _request_id())


def stream_error_frame(exc: GatewayError, *, wire_format: str) -> bytes:
    """A failure after a vendor-format stream began: the format's own in-stream error, then the end."""
    _, body = render_error(exc.status_code, exc.error_type, exc.message, wire_format=wire_format)
    if wire_format == ANTHROPIC:
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    return b"data: " + orjson.dumps(body) + b"\n\n"


def json_error(
    status: int,
    error_type: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, object]] | None = None,
    param: str | None = None,
) -> Response:
    context = request_context()
    if context is not None:
        context.error_type = error_type
    status, body = render_error(
        status, error_type, message, wire_format=_wire_format(), details=details, param=param
    )
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=dict(headers or {})
    )


def gateway_error_response(exc: GatewayError) -> Response:
    details = exc.details if isinstance(exc, InvalidRequest) else None
    param = exc.param if isinstance(exc, UnsupportedParameter) else None
    return json_error(
        exc.status_code, exc.error_type, exc.message, headers=exc.headers, details=details, param=param
    )


def safe_validation_details(errors: Any) -> list[dict[str, object]]:
    """Name the field and the rule, never the input value (it may be a prompt)."""
    return [
        {"loc": list(error.get("loc", ())), "type": error.get("type"), "msg": error.get("msg")}
        for error in errors
    ]


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return gateway_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return json_error(
        422,
        "invalid_request",
        "the request body is not valid",
        details=safe_validation_details(exc.errors()),
    )


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error_type = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_error(exc.status_code, error_type, str(exc.detail), headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Anything else is answered by RequestContextMiddleware (a 500 carrying the request id).
