"""The client-key dependency: authenticate (bearer or x-api-key), then charge the per-key rate limit.

A presented key is checked against API_KEYS / API_KEY_HASHES first (global limits), then against the
managed keys (per-key limits and models; see `managed_keys`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Request

from llm_api.errors import AuthenticationFailed, RateLimited
from llm_api.security.key_charge import KeyCharge
from llm_api.security.keys import KeyStore
from llm_api.security.managed_keys import ClientKey, ManagedKeys, check_usable
from llm_api.security.ratelimit import RateLimiter
from llm_api.utils.context import request_context

DEV_KEY_ID = "unauthenticated"


def presented_key(request: Request) -> str | None:
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


async def identify(request: Request, token: str) -> ClientKey | None:
    """The client key `token` belongs to, or None; 401 for a managed key that is revoked or expired."""
    state = request.app.state
    keys: KeyStore = state.key_store
    found = keys.authenticate(token)
    if found is not None:
        return ClientKey(id=found)
    managed: ManagedKeys | None = getattr(state, "managed_keys", None)
    if managed is None:
        return None
    match = await managed.lookup(token)
    if match is None:
        return None
    refusal = check_usable(match, dt.datetime.now(dt.UTC))
    if refusal is not None:
        context = request_context()
        if context is not None:
            context.key_id = match.key.id
        raise AuthenticationFailed(refusal)
    return ClientKey(id=match.key.id, managed=match.key)


async def charge_auth_failure(request: Request) -> None:
    state = request.app.state
    limiter: RateLimiter = state.rate_limiter
    try:
        await limiter.check_auth_failure(client_address(request))
    except RateLimited:
        state.metrics.record_rate_limit_rejection(scope="auth_failure")
        raise


async def authenticate(request: Request) -> ClientKey:
    """The caller's key, or 401 (after charging the auth-failure limit); its rate limit is not charged:
    `key_charge`."""
    state = request.app.state
    context = request_context()
    if state.unauthenticated:  # development mode (ALLOW_UNAUTHENTICATED): everyone shares one bucket
        client = ClientKey(id=DEV_KEY_ID)
    else:
        token = presented_key(request)
        try:
            found = await identify(request, token) if token is not None else None
        except AuthenticationFailed:
            await charge_auth_failure(request)
            raise
        if found is None:
            await charge_auth_failure(request)
            raise AuthenticationFailed()
        client = found
    if context is not None:
        context.key_id = client.id
    return client


def key_charge(request: Request, client: ClientKey) -> KeyCharge:
    """The request's hit on `client`'s rate limit, not charged yet."""
    state = request.app.state

    def refused() -> None:
        state.metrics.record_rate_limit_rejection(scope="key", key_id=client.id)

    return KeyCharge(state.rate_limiter, client.id, rpm_limit=client.rpm_limit, on_refused=refused)


async def require_client(request: Request) -> ClientKey:
    """The caller's key, or 401 (after charging the auth-failure limit), or 429 (its rate limit)."""
    client = await authenticate(request)
    await key_charge(request, client).run()
    return client


ClientDep = Annotated[ClientKey, Depends(require_client)]


async def require_client_key(client: ClientDep) -> str:
    """The caller's key id (see `require_client`)."""
    return client.id


ClientKeyDep = Annotated[str, Depends(require_client_key)]
