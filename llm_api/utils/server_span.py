"""The HTTP server span and the HTTP server metrics, recorded by a pure ASGI middleware.

It replaces the generic `opentelemetry-instrumentation-fastapi` (which cost about a quarter of a worker's
CPU: a route-matching pass before the app, a span per send/receive unless excluded, header scans per
message) and emits what that instrumentation emitted with the stable HTTP conventions:

    span "{method} {route}" (or "{method}" when no route matched), kind SERVER, parent from the incoming
    context (the global propagator: W3C traceparent/tracestate and baggage by default); attributes
    http.request.method(_original), url.scheme, url.path, url.query (values of unknown parameters
    redacted), http.route, http.response.status_code, network.protocol.version, server.address,
    server.port, client.address, client.port, user_agent.original, user_agent.synthetic.type, and on a
    5xx error.type plus status ERROR.

    http.server.request.duration     histogram      s          the semconv bucket boundaries
    http.server.active_requests      updowncounter  {request}  http.request.method, url.scheme (observed)
    http.server.request.body.size    histogram      By         when the request has a Content-Length
    http.server.response.body.size   histogram      By         when the response has a Content-Length

The metrics carry http.request.method, url.scheme, network.protocol.version, http.route,
http.response.status_code and error.type. Health probes get nothing. The route template is read from the
scope after the app has routed the request (FastAPI puts the matched route there), so the span is started
as "{method}" and renamed before it ends. Request and response headers are never recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote_plus

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

INSTRUMENTATION_NAME = "llm_api.http"
# The schema of the stable HTTP attributes, as the generic instrumentation declared it.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.21.0"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
# The query parameters the gateway's routes define (usage, models, the Anthropic SDK's ?beta=true). Any
# other parameter's value is redacted from url.query: a client may put a key there (?api_key=, ?key=).
KNOWN_QUERY_PARAMETERS = frozenset(
    {"key_id", "from", "to", "group_by", "limit", "after_id", "before_id", "beta"}
)
REDACTED = "REDACTED"
# The stable HTTP conventions' advisory boundaries for http.server.request.duration.
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_TEST_AGENTS = ("alwayson",)
_BOT_AGENTS = ("googlebot", "bingbot")

Headers = Sequence[tuple[bytes, bytes]]


class _HeaderGetter(Getter[Headers]):
    """Reads propagation headers straight from the ASGI header list (names are lower-case bytes)."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


HEADER_GETTER = _HeaderGetter()

Attributes = dict[str, AttributeValue]
# Metric attributes take a few values per route: built once each, not per request (bounded all the same).
_CACHE_LIMIT = 4096
_duration_attributes: dict[tuple[str, str, str | None, str | None, int, str | None], Attributes] = {}
_active_attributes: dict[tuple[str, str], Attributes] = {}


def duration_attributes(
    *, method: str, scheme: str, version: str | None, route: str | None, status: int, error: str | None
) -> Attributes:
    """The attributes of the duration and body-size points (the semconv's set for them)."""
    key = (method, scheme, version, route, status, error)
    cached = _duration_attributes.get(key)
    if cached is not None:
        return cached
    attributes: Attributes = {"http.request.method": method, "url.scheme": scheme}
    if version:
        attributes["network.protocol.version"] = version
    if route is not None:
        attributes["http.route"] = route
    if status:
        attributes["http.response.status_code"] = status
    if error is not None:
        attributes["error.type"] = error
    if len(_duration_attributes) < _CACHE_LIMIT:
        _duration_attributes[key] = attributes
    return attributes


def active_attributes(method: str, scheme: str) -> Attributes:
    cached = _active_attributes.get((method, scheme))
    if cached is None:
        cached = {"http.request.method": method, "url.scheme": scheme}
        if len(_active_attributes) < _CACHE_LIMIT:
            _active_attributes[(method, scheme)] = cached
    return cached


class HttpServerInstruments:
    """The tracer and the HTTP server instruments of one worker."""

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        self.tracer = tracer
        self.duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        # An observed count: two SDK measurements per request (add 1, add -1) cost ~10 µs; the exported
        # metric is the same non-monotonic cumulative sum.
        self._active: dict[tuple[str, str], int] = {}
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self.request_body_size = meter.create_histogram(
            "http.server.request.body.size", unit="By", description="Size of HTTP server request bodies."
        )
        self.response_body_size = meter.create_histogram(
            "http.server.response.body.size", unit="By", description="Size of HTTP server response bodies."
        )

    def request_started(self, method: str, scheme: str) -> None:
        self._active[method, scheme] = self._active.get((method, scheme), 0) + 1

    def request_ended(self, method: str, scheme: str) -> None:
        self._active[method, scheme] -= 1

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        # In the metric reader's thread: list() copies the items in one step under the GIL.
        return [Observation(count, active_attributes(*key)) for key, count in list(self._active.items())]


class ServerTelemetry:
    """What the middleware records with; off (None) until the lifespan has built this worker's providers.

    The middleware stack is built before the lifespan runs, so the middleware is always installed and
    reads `instruments` per request: None means telemetry is off and the request passes straight through.
    """

    def __init__(self) -> None:
        self.instruments: HttpServerInstruments | None = None

    def start(self, *, tracer_provider: TracerProvider, meter_provider: MeterProvider, enabled: bool) -> None:
        if not enabled:
            self.instruments = None
            return
        tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, schema_url=SCHEMA_URL)
        meter = meter_provider.get_meter(INSTRUMENTATION_NAME, schema_url=SCHEMA_URL)
        self.instruments = HttpServerInstruments(tracer, meter)

    def stop(self) -> None:
        self.instruments = None


class ServerSpanMiddleware:
    """One SERVER span and the HTTP metrics per request (health probes excluded)."""

    def __init__(self, app: ASGIApp, *, telemetry: ServerTelemetry, excluded_paths: Iterable[str]) -> None:
        self.app = app
        self.telemetry = telemetry
        self.excluded_paths = frozenset(excluded_paths)
        self._plain_routes: dict[Callable[..., Any], str] | None = None
        self._server_address: dict[tuple[str, int | None], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instruments = self.telemetry.instruments
        if instruments is None or scope["type"] != "http" or scope["path"] in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: Headers = scope["headers"]
        method, attributes = self._request_attributes(scope, headers)
        scheme: str = scope["scheme"]
        parent = propagate.extract(headers, getter=HEADER_GETTER)
        span = instruments.tracer.start_span(
            "HTTP" if method == "_OTHER" else method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        instruments.request_started(method, scheme)
        status = 0
        response_length: int | None = None

        async def send_recording(message: Message) -> None:
            nonlocal status, response_length
            if message["type"] == "http.response.start":
                status = message["status"]
                response_length = _content_length(message.get("headers", ()))
            await send(message)

        error: str | None = None
        try:
            await self.app(scope, receive, send_recording)
        except BaseException as exc:
            if not status:
                error = type(exc).__qualname__
            raise
        finally:
            try:
                self._finish(
                    instruments,
                    span,
                    scope,
                    method=method,
                    status=status,
                    error=error,
                    duration_s=time.perf_counter() - started,
                    request_length=_content_length(headers),
                    response_length=response_length,
                )
            finally:
                instruments.request_ended(method, scheme)
                otel_context.detach(token)
                span.end()

    def _request_attributes(self, scope: Scope, headers: Headers) -> tuple[str, dict[str, AttributeValue]]:
        raw_method: str = scope["method"]
        method = raw_method.upper()
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        attributes: dict[str, AttributeValue] = {"url.scheme": scope["scheme"]}
        # A (host, port) pair; a list from some servers, (path, None) on a Unix socket.
        host, port = scope.get("server") or ("0.0.0.0", 80)
        address = self._server_address.get((host, port))
        if address is None:
            # As the generic instrumentation reported it: the host with its port unless that is 80.
            address = f"{host}:{port}" if port is not None and port != 80 else str(host)
            if len(self._server_address) < 64:
                self._server_address[host, port] = address
        attributes["server.address"] = address
        if port:
            attributes["server.port"] = int(port)
        version = scope.get("http_version")
        if version:
            attributes["network.protocol.version"] = version
        path: str = scope["path"]
        if path:
            attributes["url.path"] = path
        query: bytes = scope.get("query_string", b"")
        if query:
            attributes["url.query"] = redacted_query(query.decode("latin-1"))
        if raw_method != method:
            attributes["http.request.method_original"] = raw_method
        attributes["http.request.method"] = method
        agent = _header(headers, b"user-agent")
        if agent:
            attributes["user_agent.original"] = agent
            synthetic = _synthetic_agent(agent)
            if synthetic is not None:
                attributes["user_agent.synthetic.type"] = synthetic
        client = scope.get("client")
        if client is not None:
            attributes["client.address"] = client[0]
            attributes["client.port"] = client[1]
        return method, attributes

    def _finish(
        self,
        instruments: HttpServerInstruments,
        span: trace.Span,
        scope: Scope,
        *,
        method: str,
        status: int,
        error: str | None,
        duration_s: float,
        request_length: int | None,
        response_length: int | None,
    ) -> None:
        route = self._route(scope)
        if status >= 500 or (status < 100 and status != 0):
            error = str(status)
        if span.is_recording():
            ended: dict[str, AttributeValue] = {}  # one call: one lock, not one per attribute
            if route is not None:
                span.update_name(f"{'HTTP' if method == '_OTHER' else method} {route}")
                ended["http.route"] = route
            if status:
                ended["http.response.status_code"] = status
            if error is not None:
                ended["error.type"] = error
                span.set_status(Status(StatusCode.ERROR))
            span.set_attributes(ended)
        attributes = duration_attributes(
            method=method,
            scheme=scope["scheme"],
            version=scope.get("http_version"),
            route=route,
            status=status,
            error=error,
        )
        # Recorded while the server span is current: the SDK's exemplars link the points to the trace.
        instruments.duration.record(max(duration_s, 0.0), attributes)
        if request_length is not None:
            instruments.request_body_size.record(request_length, attributes)
        if response_length is not None:
            instruments.response_body_size.record(response_length, attributes)

    def _route(self, scope: Scope) -> str | None:
        """The matched route's template: FastAPI's routes put themselves in the scope; a plain Starlette
        route (the docs pages) is found by its endpoint."""
        route = scope.get("route")
        template = getattr(route, "path_format", None)
        if isinstance(template, str):
            return template
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return None
        if self._plain_routes is None:
            app = scope.get("app")
            self._plain_routes = {
                candidate.endpoint: candidate.path_format
                for candidate in getattr(app, "routes", ())
                if isinstance(candidate, Route)
            }
        return self._plain_routes.get(endpoint)


def redacted_query(query: str) -> str:
    """The query string with the value of every parameter the gateway does not define redacted."""
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and value and unquote_plus(name) not in KNOWN_QUERY_PARAMETERS:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return "&".join(parts)


def _header(headers: Headers, name: bytes) -> str | None:
    for header, value in headers:
        if header == name:
            return value.decode("utf-8", "replace")
    return None


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for header, value in headers:
        if header == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _synthetic_agent(agent: str) -> str | None:
    lowered = agent.lower()
    if any(pattern in lowered for pattern in _TEST_AGENTS):
        return "test"
    if any(pattern in lowered for pattern in _BOT_AGENTS):
        return "bot"
    return None
