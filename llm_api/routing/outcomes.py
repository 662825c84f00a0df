"""Which failures move a request on to the next deployment, and which are the request's own."""

from __future__ import annotations

import asyncio

from llm_api.errors import UpstreamError, UpstreamRejected


def falls_back(error: BaseException) -> bool:
    """Worth trying elsewhere: 429, 5xx and overload, timeouts, connection failures (the `retryable`
    upstream errors), and also what is particular to one deployment rather than to the request: its own
    key refused (401/403 from the provider, `UpstreamAuthFailed`) or an answer it could not make sense of.
    Never the request's own errors: the gateway's 4xx (`RequestRejected`) and the provider's 400, 404,
    413, 422 (`UpstreamRejected`)."""
    return isinstance(error, UpstreamError) and not isinstance(error, UpstreamRejected)


def is_cancellation(error: BaseException) -> bool:
    return isinstance(error, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt)


def retry_after_of(error: BaseException) -> float | None:
    return error.retry_after_s if isinstance(error, UpstreamError) else None


def error_type_of(error: BaseException) -> str:
    """A low-cardinality name: the gateway's error type, else the exception class."""
    if is_cancellation(error):
        return "cancelled"
    found = getattr(error, "error_type", None)
    return found if isinstance(found, str) else type(error).__qualname__
