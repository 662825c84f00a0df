"""`DirectRoute` (routers/direct.py): the endpoint gets the request and nothing else, so a route that
asks FastAPI for a parameter or a dependency is refused when it is declared, not ignored at run time."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from llm_api.routers.direct import DirectRoute


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
