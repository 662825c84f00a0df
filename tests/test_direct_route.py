"""`DirectRoute` (routers/direct.py): the endpoint gets the request and nothing else, so a route that
asks FastAPI for a parameter or a dependency is refused when it is declared, not ignored at run time."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from llm_api.error_handlers import install_error_handlers
from llm_api.errors import RateLimited
from llm_api.routers.direct import DirectDispatch, DirectRoute


async def _settings() -> str:
    return "settings"


def test_an_endpoint_taking_only_the_request_is_accepted() -> None:
    router = APIRouter(route_class=DirectRoute)

    @router.post("/ok")
    async def ok(request: Request) -> Response:
        return Response(b"{}")

    (route,) = router.routes
    assert isinstance(route, DirectRoute)
    assert route.get_route_handler() is ok


def test_parameters_dependencies_and_sync_endpoints_are_refused() -> None:
    router = APIRouter(route_class=DirectRoute)

    async def with_dependency(request: Request, settings: Annotated[str, Depends(_settings)]) -> Response:
        return Response(settings)

    async def with_query(request: Request, limit: int = 1) -> Response:
        return Response(str(limit))

    def sync(request: Request) -> Response:
        return Response(b"")

    for endpoint in (with_dependency, with_query, sync):
        with pytest.raises(TypeError, match="DirectRoute"):
            router.add_api_route("/refused", endpoint, methods=["POST"])


def _dispatching_app(seen: list[dict[str, object]]) -> FastAPI:
    """A FastAPI app with the gateway's error handlers, one direct route and one ordinary route, and the
    dispatcher innermost of a middleware that records what reached it (the scope keys the span reads)."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(route_class=DirectRoute)

    @router.post("/direct")
    async def direct(request: Request) -> Response:
        kind = (await request.body()).decode()
        if kind == "gateway-error":
            raise RateLimited("slow down", headers={"Retry-After": "3"})
        if kind == "bug":
            raise LookupError("a bug")
        return Response(b'{"ok":true}', media_type="application/json")

    app.include_router(router)

    @app.post("/ordinary")
    async def ordinary() -> dict[str, str]:
        return {"ordinary": "yes"}

    app.add_middleware(DirectDispatch, routes=router.routes)

    class Record:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await self.inner(scope, receive, send)
            finally:
                route = scope.get("route")
                seen.append(
                    {
                        "path": scope["path"],
                        "route": getattr(route, "path_format", None),
                        "endpoint": getattr(scope.get("endpoint"), "__name__", None),
                        "routed": "router" in scope,  # set by Starlette's router on its way in
                    }
                )

    app.add_middleware(Record)
    return app


async def test_direct_dispatch_answers_the_endpoint_and_maps_its_errors_as_fastapi_would() -> None:
    seen: list[dict[str, object]] = []
    app = _dispatching_app(seen)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        ok = await client.post("/direct", content=b"ok")
        limited = await client.post("/direct", content=b"gateway-error")
        bug = await client.post("/direct", content=b"bug")
        wrong_method = await client.get("/direct")
        slash = await client.post("/direct/", content=b"ok", follow_redirects=False)
        ordinary = await client.post("/ordinary")
    assert (ok.status_code, ok.json()) == (200, {"ok": True})
    # The app's GatewayError handler: the status, the error body and the Retry-After header.
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == RateLimited.error_type
    # No handler: the exception goes on outwards (in the gateway, RequestContextMiddleware's 500).
    assert bug.status_code == 500
    # Not a direct route's method or path: FastAPI's router answers as before.
    assert wrong_method.status_code == 405
    assert slash.status_code == 307
    assert (ordinary.status_code, ordinary.json()) == (200, {"ordinary": "yes"})
    # The direct route never went through the router, yet its scope names the route as the router's would.
    assert seen[0] == {"path": "/direct", "route": "/direct", "endpoint": "direct", "routed": False}
    assert [entry["routed"] for entry in seen] == [False, False, False, True, True, True]


def test_the_gateway_stack_has_no_pass_through_layers_and_ends_in_the_dispatcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every request walks this chain; FastAPI's exception telemetry (its OpenTelemetry is off) and its
    app-wide body limit (no `max_body_size`) would only pass it on."""
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")  # llm_api.main builds `app` from the env on import
    from llm_api.config import Settings
    from llm_api.main import create_app

    app = create_app(Settings(allow_unauthenticated=True))
    layer: object = app.build_middleware_stack()
    chain = []
    while layer is not None:
        chain.append(type(layer).__name__)
        layer = getattr(layer, "app", None)
    assert chain[:5] == [
        "ServerErrorMiddleware",
        "ServerSpanMiddleware",
        "RequestContextMiddleware",
        "DirectDispatch",
        "ExceptionMiddleware",
    ], chain
    assert "ExceptionTelemetryMiddleware" not in chain and "AppBodyLimitMiddleware" not in chain
