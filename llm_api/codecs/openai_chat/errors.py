"""OpenAI's error object, `{"error": {"message", "type", "param", "code"}}`, and its type per status.

The openai SDK picks its exception class by HTTP status alone (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 409 ConflictError, 422
UnprocessableEntityError, 429 RateLimitError, >=500 InternalServerError); `type` is for people and logs.
OpenAI's own API says `invalid_request_error` for most 4xx and `server_error` for 5xx; the gateway names
the auth, permission, not-found and rate-limit cases more precisely, as the task settled.
"""

from __future__ import annotations

from typing import Any

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_type_for_status(status: int) -> str:
    if status >= 500:
        return "server_error"
    return ERROR_TYPES.get(status, "invalid_request_error")
