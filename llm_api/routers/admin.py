"""The admin API under `/admin/` (mounted only when ADMIN_API_KEY is set): managed keys and usage reports.

Authentication: `Authorization: Bearer $ADMIN_API_KEY` (or `x-api-key`, read as for client keys). A client
key is refused with 403, anything else with 401 (charged to the authentication-failure limit like a bad
client key).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from llm_api.admin.schemas import (
    IssuedKeyOut,
    KeyCreate,
    KeyDetailOut,
    KeyListOut,
    KeyOut,
    KeyRotate,
    KeyUpdate,
    KeyUsageOut,
)
from llm_api.admin.service import KeyAdmin, KeyUsageSource
from llm_api.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from llm_api.routers.usage import (
    FromQuery,
    GroupByQuery,
    ToQuery,
    parse_group_by,
    report_body,
    report_range,
)
from llm_api.routing.cache import ResponseCache
from llm_api.routing.router import Router
from llm_api.security.auth import charge_auth_failure, identify, presented_key
from llm_api.store.keys import IssuedKey
from llm_api.store.store import Store


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


async def require_admin(request: Request) -> None:
    """Let the admin key through; 403 for a client key, 401 for anything else."""
    admin_digest: bytes = request.app.state.admin_key_digest
    token = presented_key(request)
    if token is not None and hmac.compare_digest(_digest(token), admin_digest):
        return
    try:
        client = await identify(request, token) if token is not None else None
    except AuthenticationFailed:
        client = None
    if client is not None:
        raise PermissionDenied("this API key may not use the admin API")
    await charge_auth_failure(request)
    raise AuthenticationFailed()


async def get_key_admin(request: Request) -> KeyAdmin:
    admin: KeyAdmin = request.app.state.key_admin
    return admin


KeyAdminDep = Annotated[KeyAdmin, Depends(get_key_admin)]

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _issued(issued: IssuedKey) -> IssuedKeyOut:
    return IssuedKeyOut(**KeyOut.of(issued.key).model_dump(), key=issued.secret)


@router.post("/keys", status_code=201, response_model=IssuedKeyOut, summary="Create a managed key")
async def create_key(spec: KeyCreate, admin: KeyAdminDep) -> IssuedKeyOut:
    return _issued(await admin.create(spec))


@router.get("/keys", response_model=KeyListOut, summary="List the managed keys (never their secrets)")
async def list_keys(admin: KeyAdminDep) -> KeyListOut:
    return KeyListOut(data=[KeyOut.of(key) for key in await admin.list()])


@router.get("/keys/{key_id}", response_model=KeyDetailOut, summary="One managed key, with its live usage")
async def get_key(key_id: str, admin: KeyAdminDep, request: Request) -> KeyDetailOut:
    key = await admin.get(key_id)
    source: KeyUsageSource = request.app.state.key_usage
    usage = await source(key)
    return KeyDetailOut(
        **KeyOut.of(key).model_dump(),
        usage=KeyUsageOut(
            period_spend_usd=float(usage.period_spend_usd),
            minute_tokens=usage.minute_tokens,
            minute_requests=usage.minute_requests,
        ),
    )


@router.patch("/keys/{key_id}", response_model=KeyOut, summary="Change a key's limits, name, models, expiry")
async def update_key(key_id: str, changes: KeyUpdate, admin: KeyAdminDep) -> KeyOut:
    return KeyOut.of(await admin.update(key_id, changes))


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke a key (at once, everywhere)")
async def revoke_key(key_id: str, admin: KeyAdminDep) -> Response:
    await admin.revoke(key_id)
    return Response(status_code=204)


@router.post("/keys/{key_id}/rotate", response_model=IssuedKeyOut, summary="A new secret for a key")
async def rotate_key(key_id: str, admin: KeyAdminDep, body: KeyRotate | None = None) -> IssuedKeyOut:
    grace_s = body.grace_s if body is not None else 0.0
    return _issued(await admin.rotate(key_id, grace_s=grace_s))


@router.get("/usage", summary="Usage per key, model and/or day, from the daily rollup")
async def usage_report(
    request: Request,
    key_id: str | None = None,
    model: str | None = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: GroupByQuery = None,
) -> dict[str, Any]:
    store: Store = request.app.state.store
    first, last = report_range(from_, to)
    groups = parse_group_by(group_by)
    totals = await store.usage.report(
        key_id=key_id, model=model, first_day=first, last_day=last, group_by=groups
    )
    return report_body(totals, groups)


@router.get("/deployments", summary="Each deployment's state: closed, open until when, half-open")
async def deployments(request: Request) -> dict[str, Any]:
    """The router's deployments (GATEWAY_CONFIG); an empty list without a gateway file."""
    gateway_router: Router | None = getattr(request.app.state, "router", None)
    return {"data": await gateway_router.deployments() if gateway_router is not None else []}


@router.delete("/cache", summary="Flush the response cache: every entry, or one key id's")
async def flush_cache(request: Request, key_id: str | None = None) -> dict[str, Any]:
    cache: ResponseCache | None = getattr(request.app.state, "response_cache", None)
    if cache is None:
        return {"deleted": 0}
    try:
        deleted = await cache.flush(key_id=key_id)
    except ValueError as exc:  # a malformed key id: the client's mistake
        raise InvalidRequest(str(exc)) from None
    return {"deleted": deleted}
