"""Anthropic's error bodies, and the error type the anthropic SDK expects for each HTTP status."""

from __future__ import annotations

from typing import Any

# The SDK picks its exception class by status (400 BadRequestError ... 529 OverloadedError); the body's
# `error.type` is what Anthropic sends with that status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for_status(status: int) -> str:
    """Anthropic's `error.type` for an HTTP status; `api_error` for any other 5xx, `invalid_request_error`
    for any other 4xx."""
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}, "request_id"}`, as Anthropic answers errors."""
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
