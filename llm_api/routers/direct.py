"""Routes that FastAPI matches and documents but does not drive: the hot endpoints.

FastAPI's request handler solves the dependency tree of every request (per level it parses the query
string, the headers and the cookies again and builds a scratch `Response`), then inspects what the
endpoint returned. Our hot endpoints take only the `Request`, authenticate with an explicit call, read and
validate the body themselves and return a ready `Response`, so none of that work buys anything. Skipping
it saved ~0.15 ms of CPU per request at c=32, ~7 %, with everything on (docs/performance.md, issue 12).

`DirectRoute` keeps everything else of an `APIRoute`: matching, the exception handlers (FastAPI's
`request_response` wraps the handler), and the OpenAPI operation, built as before from `summary`,
`responses`, `response_model` and `openapi_extra` (the request body and the security requirement:
`openapi.request_body`, `openapi.CLIENT_KEY_SECURITY`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """An `APIRoute` whose endpoint is called with the request alone and returns the response."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        parameters = list(inspect.signature(endpoint).parameters.values())
        if not inspect.iscoroutinefunction(endpoint) or len(parameters) != 1:
            raise TypeError(f"{endpoint.__name__}: a DirectRoute endpoint is `async def (request)`")
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Endpoint:
        return cast(Endpoint, self.endpoint)
