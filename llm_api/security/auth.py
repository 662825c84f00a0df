"""The client-key dependency: authenticate (bearer or x-api-key), then charge the per-key rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llm_api.errors import AuthenticationFailed, RateLimited
from llm_api.security.keys import KeyStore
from llm_api.security.ratelimit import RateLimiter
from llm_api.utils.context import request_context

DEV_KEY_ID = "unauthenticated"


def _presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer <key>` or, when there is none, from `x-api-key: <key>`
    (the anthropic SDK's header); both are checked against the same keys."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return token
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def client_address(request: Request) -> str:
    """The peer address: the key of the authentication-failure limit.

    uvicorn's ProxyHeadersMiddleware has already replaced the peer with the X-Forwarded-For client, but
    only when the connection comes from gunicorn's forwarded_allow_ips (FORWARDED_ALLOW_IPS). Do NOT use
    slowapi's `get_ipaddr` here: it trusts the raw X-Forwarded-For header from anyone (it even looks for
    "X_FORWARDED_FOR"), so a client could pick a fresh bucket per request. This is slowapi's
    `get_remote_address`.
    """
    return request.client.host if request.client else "unknown"


async def require_client_key(request: Request) -> str:
    """Return the caller's key id, or raise 401 (after charging the auth-failure limit)."""
    state = request.app.state
    keys: KeyStore = state.key_store
    limiter: RateLimiter = state.rate_limiter
    context = request_context()
    if keys.empty:  # development mode (ALLOW_UNAUTHENTICATED): everyone shares one bucket
        ident = DEV_KEY_ID
    else:
        token = _presented_key(request)
        found = keys.authenticate(token) if token is not None else None
        if found is None:
            try:
                await limiter.check_auth_failure(client_address(request))
            except RateLimited:
                state.metrics.record_rate_limit_rejection(scope="auth_failure")
                raise
            raise AuthenticationFailed()
        ident = found
    if context is not None:
        context.key_id = ident
    try:
        await limiter.check_key(ident)
    except RateLimited:
        state.metrics.record_rate_limit_rejection(scope="key", key_id=ident)
        raise
    return ident


ClientKeyDep = Annotated[str, Depends(require_client_key)]
