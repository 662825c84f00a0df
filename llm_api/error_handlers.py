"""The one place where exceptions become HTTP responses (JSON bodies that always carry the request id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from llm_api.errors import GatewayError, InvalidRequest
from llm_api.utils.context import request_context


def _request_id() -> str | None:
    context = request_context()
    return context.request_id if context is not None else None


def error_payload(
    error_type: str, message: str, *, details: list[dict[str, object]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": error_type, "message": message, "request_id": _request_id()}
    if details:
        body["details"] = details
    return {"error": body}


def json_error(
    status: int,
    error_type: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: list[dict[str, object]] | None = None,
) -> Response:
    context = request_context()
    if context is not None:
        context.error_type = error_type
    return Response(
        orjson.dumps(error_payload(error_type, message, details=details)),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def gateway_error_response(exc: GatewayError) -> Response:
    details = exc.details if isinstance(exc, InvalidRequest) else None
    return json_error(exc.status_code, exc.error_type, exc.message, headers=exc.headers, details=details)


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
