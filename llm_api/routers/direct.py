"""Routes that FastAPI documents but does not drive: the hot endpoints.

FastAPI's request handler solves the dependency tree of every request (per level it parses the query
string, the headers and the cookies again and builds a scratch `Response`), then inspects what the
endpoint returned. Our hot endpoints take only the `Request`, authenticate with an explicit call, read and
validate the body themselves and return a ready `Response`, so none of that work buys anything. Skipping
it saved ~0.15 ms of CPU per request at c=32, ~7 %, with everything on (docs/performance.md, issue 12).

`DirectRoute` keeps the OpenAPI operation of an `APIRoute`, built as before from `summary`, `responses`,
`response_model` and `openapi_extra` (the request body and the security requirement:
`openapi.request_body`, `openapi.CLIENT_KEY_SECURITY`), and FastAPI's matching and exception handling
still serve it wherever `DirectDispatch` does not (a mounted app, a `root_path`). `DirectDispatch` matches
the request itself and calls the endpoint: in process, 42 µs of Starlette and FastAPI layers per request
became 9 µs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, cast

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

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


class DirectDispatch:
    """Pure ASGI, innermost of the gateway's middleware: a request to a `DirectRoute` (its method and its
    fixed path) goes straight to the endpoint; everything else goes on to FastAPI as before.

    Starlette and FastAPI would otherwise put the request through four more layers first (Starlette's
    exception middleware, FastAPI's exit-stack middleware, the router's match over every route, and the
    route's exception wrapper with two more exit stacks), none of which a direct endpoint uses: it takes
    no dependencies and returns a ready response. Each layer is a coroutine frame held for the life of a
    stream, and three are `AsyncExitStack`s (a deque each). What the endpoint
    raises is answered as FastAPI would have: by the app's handler for that exception (a `GatewayError`
    becomes the format's error body), and anything without one goes on to RequestContextMiddleware (the
    last-resort 500). The scope carries the route as the router would have set it (the span's http.route).
    """

    def __init__(self, app: ASGIApp, *, routes: Iterable[BaseRoute]) -> None:
        """`routes`: those of the routers the app includes without a prefix (their paths are the app's)."""
        self.app = app
        self._table: dict[tuple[str, str], DirectRoute] = {}
        for route in routes:
            if isinstance(route, DirectRoute) and not route.param_convertors:
                for method in route.methods or ():
                    self._table.setdefault((method, route.path), route)  # the first wins, as in the router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._table.get((scope["method"], scope["path"]))
            if route is not None:
                await self._drive(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _drive(self, route: DirectRoute, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


ExceptionHandler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


def _handler_for(scope: Scope, exc: Exception) -> ExceptionHandler | None:
    """The app's handler for `exc` (the nearest class in its MRO), as Starlette's exception middleware
    looks it up; the 500 handler (`Exception`) is not one: that answer is the outer middleware's."""
    handlers: Mapping[Any, ExceptionHandler] = getattr(scope.get("app"), "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None
