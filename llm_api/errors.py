"""The gateway's exception hierarchy; `error_handlers` maps it to HTTP in one place.

    GatewayError                        500 internal_error
    ├── RequestRejected                 4xx: the client's request cannot be served as sent
    │   ├── InvalidRequest              422 invalid_request
    │   ├── UnsupportedParameter        400 unsupported_parameter
    │   ├── ModelPriceUnknown           400 model_price_unknown (a budgeted key, a model with no price)
    │   ├── PayloadTooLarge             413 payload_too_large
    │   ├── AuthenticationFailed        401 authentication_failed
    │   ├── BudgetExceeded              402 budget_exceeded (SDKs do not retry a 402)
    │   ├── PermissionDenied            403 permission_denied
    │   │   └── ModelNotAllowed         403 model_not_allowed (the key may not use that model)
    │   ├── NotFound                    404 not_found
    │   └── RateLimited                 429 rate_limited
    ├── ServiceUnavailable              503: the gateway itself cannot serve now
    │   ├── ProviderNotConfigured       503 provider_not_configured
    │   └── RateLimitBackendUnavailable 503 rate_limit_unavailable
    │       └── BudgetUnavailable       503 budget_unavailable (budgeted keys fail closed)
    └── UpstreamError                   502 upstream_error: the provider call failed
        ├── UpstreamRejected            400/404/413/422 upstream_rejected_request (never retried)
        ├── UpstreamAuthFailed          502 upstream_auth_failed (the gateway's provider key; never retried)
        ├── UpstreamRateLimited         429 upstream_rate_limited (retried)
        ├── UpstreamUnavailable         503 upstream_unavailable (5xx, overload; retried)
        ├── UpstreamTimeout             504 upstream_timeout (retried)
        └── UpstreamConnectionFailed    502 upstream_connection_failed (retried)

Messages are safe to show a client: they never carry prompt text, keys or an upstream's raw body.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

DEFAULT_RETRY_AFTER_S = 1


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status_code: int = 500
    error_type: str = "internal_error"
    retryable: bool = False

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class RequestRejected(GatewayError):
    status_code = 400
    error_type = "bad_request"


class InvalidRequest(RequestRejected):
    status_code = 422
    error_type = "invalid_request"

    def __init__(self, message: str, *, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class UnsupportedParameter(RequestRejected):
    """`param` names the field in the client's own format (`messages[3].content[1].image_url`), if known."""

    status_code = 400
    error_type = "unsupported_parameter"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelPriceUnknown(RequestRejected):
    status_code = 400
    error_type = "model_price_unknown"


class PayloadTooLarge(RequestRejected):
    status_code = 413
    error_type = "payload_too_large"


class AuthenticationFailed(RequestRejected):
    status_code = 401
    error_type = "authentication_failed"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class BudgetExceeded(RequestRejected):
    status_code = 402
    error_type = "budget_exceeded"


class PermissionDenied(RequestRejected):
    status_code = 403
    error_type = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    error_type = "model_not_allowed"


class NotFound(RequestRejected):
    status_code = 404
    error_type = "not_found"


class RateLimited(RequestRejected):
    status_code = 429
    error_type = "rate_limited"


class ServiceUnavailable(GatewayError):
    status_code = 503
    error_type = "service_unavailable"


class ProviderNotConfigured(ServiceUnavailable):
    error_type = "provider_not_configured"


class RateLimitBackendUnavailable(ServiceUnavailable):
    error_type = "rate_limit_unavailable"


class BudgetUnavailable(RateLimitBackendUnavailable):
    error_type = "budget_unavailable"


class UpstreamError(GatewayError):
    """A provider call failed; `provider` names it, `upstream_status` is its HTTP status if any."""

    status_code = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        headers = {}
        if retry_after_s is not None and self.status_code in (429, 503):
            headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
        elif self.status_code == 429:
            # A 429 always says when to come back, even when the provider did not.
            headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_S)
        super().__init__(message, headers=headers)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after_s = retry_after_s


class UpstreamRejected(UpstreamError):
    error_type = "upstream_rejected_request"

    def __init__(self, message: str, *, provider: str, upstream_status: int) -> None:
        super().__init__(message, provider=provider, upstream_status=upstream_status)
        self.status_code = upstream_status if upstream_status in (400, 404, 413, 422) else 400


class UpstreamAuthFailed(UpstreamError):
    error_type = "upstream_auth_failed"


class UpstreamRateLimited(UpstreamError):
    status_code = 429
    error_type = "upstream_rate_limited"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    error_type = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"
    retryable = True


class UpstreamConnectionFailed(UpstreamError):
    status_code = 502
    error_type = "upstream_connection_failed"
    retryable = True


def upstream_error_for_status(
    status: int, *, provider: str, retry_after_s: float | None = None, error_kind: str | None = None
) -> UpstreamError:
    """Classify an upstream HTTP status (and, for in-stream errors, its error type) into our hierarchy."""
    label = f"{provider} answered HTTP {status}" if status != 200 else f"{provider} stream failed"
    if error_kind:
        label = f"{label} ({error_kind})"
    if error_kind in {"overloaded_error", "api_error"} or status in (500, 502, 503, 529):
        return UpstreamUnavailable(
            f"{label}; the provider is unavailable, try again later",
            provider=provider,
            upstream_status=status,
            retry_after_s=retry_after_s,
        )
    if error_kind == "rate_limit_error" or status == 429:
        return UpstreamRateLimited(
            f"{label}; the provider is rate limiting the gateway",
            provider=provider,
            upstream_status=status,
            retry_after_s=retry_after_s,
        )
    if status in (408, 504) or error_kind == "timeout_error":
        return UpstreamTimeout(f"{label}; the provider timed out", provider=provider, upstream_status=status)
    if status in (401, 403) or error_kind in {"authentication_error", "permission_error"}:
        return UpstreamAuthFailed(
            f"{label}; the gateway's credentials for {provider} were refused",
            provider=provider,
            upstream_status=status,
        )
    if 400 <= status < 500:
        return UpstreamRejected(
            f"{label}; the provider rejected the request", provider=provider, upstream_status=status
        )
    return UpstreamError(f"{label}", provider=provider, upstream_status=status)
