"""Liveness and readiness probes: no auth, no rate limit, quiet in the access log."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, str] = {}
    providers: list[str] = state.providers.configured
    checks["providers"] = "ok" if providers else "no provider configured"
    checks["redis"] = "ok" if await state.rate_limiter.storage_ready() else "unreachable"
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    router = getattr(state, "router", None)
    if router is not None:
        # Each deployment's breaker (closed, open until, half-open), recent failures, in-flight
        # requests: names and URLs from the gateway file, never a key. A cooling deployment does not
        # make the instance unready: the router routes around it.
        body["deployments"] = await router.deployments()
    return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")
