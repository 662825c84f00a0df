"""Traces and metrics from the real gunicorn (2 workers) to a real OTLP receiver on loopback."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from llm_api.config import Settings
from llm_api.utils.tracing import build_telemetry, signal_endpoint
from tests.otlp_receiver import Receiver, Span, run_grpc_receiver, run_http_receiver
from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway, wait_until

CANARY = "canary-7f3a-do-not-export"


def telemetry_env(emulator: Emulator, receiver: Receiver, **overrides: str) -> dict[str, str]:
    return gateway_env(
        emulator,
        OTEL_SDK_DISABLED="false",
        OTEL_SERVICE_NAME="llm-api-test",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORT_INTERVAL="300",
        **overrides,
    )


@pytest.fixture(scope="module")
def grpc_receiver() -> Iterator[Receiver]:
    with run_grpc_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_gateway(emulator: Emulator, grpc_receiver: Receiver) -> Iterator[Gateway]:
    # The Anthropic SDK has OpenTelemetry of its own that records message content when this is set: the
    # gateway must keep it off whatever the environment says.
    env = telemetry_env(
        emulator, grpc_receiver, WEB_CONCURRENCY="2", ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE="content"
    )
    with run_gateway(env) as gw:
        yield gw


def post_chat(gateway: Gateway, request_id: str, **body: Any) -> httpx.Response:
    body.setdefault("messages", [{"role": "user", "content": f"Say hello. {CANARY}"}])
    with gateway.client() as client:
        response = client.post("/v1/chat", json=body, headers={"X-Request-ID": request_id})
    return response


def spans_of(receiver: Receiver, request_id: str) -> tuple[Span, Span] | None:
    """The server span and the GenAI span of one request, once both have arrived."""
    spans = receiver.received.spans()
    clients = [
        s for s in spans if s.kind == "CLIENT" and s.attributes.get("llm_api.request_id") == request_id
    ]
    if not clients:
        return None
    [client] = clients
    servers = [s for s in spans if s.span_id == client.parent_span_id]
    return (servers[0], client) if servers else None


def test_server_and_genai_spans_share_a_trace(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    emu.configure(text="Hello there, friend.")
    emu.fail({"status": 529}, provider="anthropic")
    request_id = f"trace-{uuid.uuid4().hex}"
    response = post_chat(traced_gateway, request_id, model="claude-opus-4-5", max_tokens=64, temperature=0.5)
    assert response.status_code == 200, response.text
    answer = response.json()

    server, client = wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)

    assert server.kind == "SERVER" and server.name == "POST /v1/chat"
    assert server.trace_id == client.trace_id
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/v1/chat"
    assert server.attributes["llm_api.key_id"] == client.attributes["llm_api.key_id"]

    assert client.name == "chat claude-opus-4-5"
    attrs = client.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic" == attrs["gen_ai.system"]
    assert attrs["gen_ai.request.model"] == "claude-opus-4-5"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.response.model"] == answer["model"]
    assert attrs["gen_ai.response.id"] == answer["id"]
    assert attrs["gen_ai.usage.input_tokens"] == answer["input_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == answer["output_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert attrs["llm_api.attempts"] == 2
    assert "error.type" not in attrs
    [(_, retry)] = [(n, a) for n, a in client.events if n == "retry"]
    assert retry["retry.attempt"] == 1
    assert retry["error.type"] == "upstream_unavailable"
    assert retry["retry.wait_s"] >= 0

    # The providers were built in a worker, after the fork: never in the master.
    assert client.resource["service.name"] == "llm-api-test"
    assert client.resource["process.pid"] != traced_gateway.proc.pid
    # Over gRPC too, the workers hand their spans to the master's relay (tests/test_span_relay.py).
    assert "span relay started" in traced_gateway.output()
    assert "span relay unavailable" not in traced_gateway.output()


def test_stream_span_covers_the_whole_stream(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    emu.configure(text="one two three four five six", chunks=6, chunk_delay_s=0.05, first_token_delay_s=0.1)
    request_id = f"stream-{uuid.uuid4().hex}"
    body = {"model": "o3-mini", "stream": True, "messages": [{"role": "user", "content": CANARY}]}
    with (
        traced_gateway.client() as client,
        client.stream("POST", "/v1/chat", json=body, headers={"X-Request-ID": request_id}) as response,
    ):
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]" and len(events) == 7

    _, span = wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)
    assert span.name == "chat o3-mini" and span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.request.stream"] is True
    # A reasoning model: temperature is not sent upstream, so it is not on the span either.
    assert "temperature" not in emu.requests()[0]["body"]
    assert "gen_ai.request.temperature" not in span.attributes
    ttft = span.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0.1 <= ttft < (span.end_ns - span.start_ns) / 1e9
    assert [name for name, _ in span.events] == ["gen_ai.first_chunk"]
    # Opened and closed inside the stream: it lasts as long as the 6 chunks, not just the handler.
    assert (span.end_ns - span.start_ns) / 1e9 >= 0.1 + 5 * 0.05
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    # One server span, no per-chunk send/receive spans.
    trace_spans = [s for s in grpc_receiver.received.spans() if s.trace_id == span.trace_id]
    assert sorted(s.kind for s in trace_spans) == ["CLIENT", "SERVER"]


def test_stream_span_ends_when_the_client_goes_away(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    emu.configure(text=" ".join(["word"] * 40), chunks=40, chunk_delay_s=0.1)
    request_id = f"gone-{uuid.uuid4().hex}"
    body = {"stream": True, "messages": [{"role": "user", "content": CANARY}]}
    with (
        traced_gateway.client() as client,
        client.stream("POST", "/v1/chat", json=body, headers={"X-Request-ID": request_id}) as response,
    ):
        next(line for line in response.iter_lines() if line.startswith("data:"))
    _, span = wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)
    assert span.attributes["error.type"] == "cancelled"
    assert (span.end_ns - span.start_ns) / 1e9 < 40 * 0.1  # ended with the stream, not at its natural end


def test_failed_upstream_call_has_error_type(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    emu.fail({"status": 400}, provider="anthropic")
    request_id = f"fail-{uuid.uuid4().hex}"
    response = post_chat(traced_gateway, request_id)
    assert response.status_code == 400
    _, span = wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)
    assert span.attributes["error.type"] == "upstream_rejected_request"
    assert span.status_code == 2  # ERROR
    assert not [name for name, _ in span.events if name == "retry"]


def test_health_probes_are_not_traced_and_no_prompt_text_is_exported(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    request_id = f"canary-{uuid.uuid4().hex}"
    for path in ("/healthz", "/readyz"):
        assert httpx.get(f"{traced_gateway.base_url}{path}").status_code == 200
    assert post_chat(traced_gateway, request_id).status_code == 200
    wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)
    spans = grpc_receiver.received.spans()
    assert not [s for s in spans if "healthz" in s.name or "readyz" in s.name]
    assert not [
        s for s in spans if any("/healthz" in str(v) or "/readyz" in str(v) for v in s.attributes.values())
    ]
    leaked = [s.name for s in spans if any(CANARY in text for text in s.texts())]
    assert not leaked
    assert CLIENT_KEY not in str([s.texts() for s in spans])


def test_metrics_arrive_over_otlp(traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator) -> None:
    emu.configure(chunks=3)
    assert post_chat(traced_gateway, f"m-{uuid.uuid4().hex}").status_code == 200
    assert post_chat(traced_gateway, f"m-{uuid.uuid4().hex}", stream=True).status_code == 200
    wanted = {
        "http.server.request.duration",
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
    }
    wait_until(lambda: wanted <= grpc_receiver.received.metric_names(), timeout=15)
    points = grpc_receiver.received.metric_points()
    token_types = {
        p.attributes.get("gen_ai.token.type") for p in points if p.name == "gen_ai.client.token.usage"
    }
    assert token_types == {"input", "output"}
    durations = [p for p in points if p.name == "gen_ai.client.operation.duration"]
    assert {p.unit for p in durations} == {"s"}
    assert {"gen_ai.provider.name", "gen_ai.request.model"} <= set(durations[0].attributes)
    http = [p for p in points if p.name == "http.server.request.duration"]
    assert {p.attributes.get("http.route") for p in http} >= {"/v1/chat"}
    assert all(p.attributes.get("http.route") not in ("/healthz", "/readyz") for p in http)


def import_create_app(monkeypatch: pytest.MonkeyPatch) -> Callable[[Settings], FastAPI]:
    """`llm_api.main` builds its module-level `app` from the environment when first imported."""
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")
    from llm_api.main import create_app

    return create_app


# In process, library deprecations surface as errors: tenacity's `initial=` (services/retry.py) and the
# anthropic SDK's warning for the default model. Under gunicorn they are not warnings-as-errors.
IN_PROCESS_DEPRECATIONS = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def in_process_settings(emulator: Emulator, **overrides: str) -> Settings:
    env = gateway_env(emulator, OTEL_SDK_DISABLED="false", **overrides)
    fields = {name.lower(): value for name, value in env.items() if name.lower() in Settings.model_fields}
    return Settings(**fields)


@IN_PROCESS_DEPRECATIONS
def test_http_protobuf_exporter_and_flush_on_shutdown(
    emulator: Emulator, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: the http/protobuf exporter, and spans flushed by the lifespan shutdown."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the shutdown flush can deliver them
    with run_http_receiver() as receiver:
        settings = in_process_settings(
            emulator,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        )
        request_id = f"http-{uuid.uuid4().hex}"
        with TestClient(import_create_app(monkeypatch)(settings)) as client:
            response = client.post(
                "/v1/chat",
                json={"messages": [{"role": "user", "content": CANARY}]},
                headers={"Authorization": f"Bearer {CLIENT_KEY}", "X-Request-ID": request_id},
            )
            assert response.status_code == 200
            assert spans_of(receiver, request_id) is None
        server, client_span = wait_until(lambda: spans_of(receiver, request_id), timeout=10)
        assert client_span.trace_id == server.trace_id
        assert "gen_ai.client.operation.duration" in receiver.received.metric_names()


@IN_PROCESS_DEPRECATIONS
def test_without_an_endpoint_nothing_is_exported_or_logged(
    emulator: Emulator, emu: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = in_process_settings(emulator)
    assert settings.otel_exporter_otlp_endpoint is None and not settings.otel_sdk_disabled
    app = import_create_app(monkeypatch)(settings)
    with caplog.at_level(logging.DEBUG), TestClient(app) as client:
        headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
        body = {"messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat", json=body, headers=headers).status_code == 200
        assert client.post("/v1/chat", json={**body, "stream": True}, headers=headers).status_code == 200
        assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") or "export" in r.getMessage()]


@pytest.mark.parametrize(
    ("env", "traces", "metrics"),
    [
        ({}, None, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
            "http://c:4318/v1/traces",
            "http://c:4318/v1/metrics",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http://c:4317",
            "http://c:4317",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"},
            "http://c:4318/v1/traces",
            None,
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"}, "http://t:1/x", None),
    ],
)
def test_endpoints_follow_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], traces: str | None, metrics: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(allow_unauthenticated=True)
    assert signal_endpoint(settings, "traces") == traces
    assert signal_endpoint(settings, "metrics") == metrics
    if traces is None and metrics is None:
        telemetry = build_telemetry(settings)  # no-op providers: nothing to start or stop
        assert type(telemetry.tracer_provider).__name__ == "NoOpTracerProvider"
        assert type(telemetry.meter_provider).__name__ == "NoOpMeterProvider"


def test_server_span_continues_the_callers_trace_and_redacts_unknown_query_values(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    request_id = f"parent-{uuid.uuid4().hex}"
    with traced_gateway.client() as client:
        response = client.post(
            "/v1/chat",
            params={"api_key": CLIENT_KEY, "beta": "true"},
            json={"messages": [{"role": "user", "content": CANARY}]},
            headers={"X-Request-ID": request_id, "traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
    assert response.status_code == 200, response.text
    server, client_span = wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)
    # The caller's traceparent is the server span's parent; the GenAI span stays the server span's child.
    assert server.trace_id == trace_id == client_span.trace_id
    assert server.parent_span_id == parent_id
    assert server.kind == "SERVER" and server.name == "POST /v1/chat"
    # A parameter the gateway does not define keeps its name, not its value: it may be a key.
    assert server.attributes["url.query"] == "api_key=REDACTED&beta=true"
    assert server.attributes["url.path"] == "/v1/chat"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.scheme"] == "http"
    assert server.attributes["network.protocol.version"] == "1.1"
    assert server.attributes["client.address"] == "127.0.0.1"
    assert server.attributes["user_agent.original"].startswith("python-httpx/")
    assert not any(CLIENT_KEY in text or CANARY in text for text in server.texts())


def test_server_errors_mark_the_server_span_and_the_duration_metric(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    emu.fail(*[{"status": 500}] * 6, provider="anthropic")
    request_id = f"5xx-{uuid.uuid4().hex}"
    response = post_chat(traced_gateway, request_id)
    assert response.status_code >= 500
    server, _ = wait_until(lambda: spans_of(grpc_receiver, request_id), timeout=15)
    assert server.attributes["http.response.status_code"] == response.status_code
    assert server.attributes["error.type"] == str(response.status_code)
    assert server.status_code == 2  # ERROR
    assert server.status_message == ""

    # A path that no route matches: the span is named by its method alone and has no http.route.
    path = f"/no-such-path-{uuid.uuid4().hex}"
    with traced_gateway.client() as client:
        assert client.get(path).status_code == 404
    [missing] = wait_until(
        lambda: [s for s in grpc_receiver.received.spans() if s.attributes.get("url.path") == path],
        timeout=15,
    )
    assert missing.name == "GET" and "http.route" not in missing.attributes
    assert missing.attributes["http.response.status_code"] == 404 and "error.type" not in missing.attributes
    assert missing.status_code == 0

    def failed_durations() -> list[Any]:
        return [
            p
            for p in grpc_receiver.received.metric_points()
            if p.name == "http.server.request.duration"
            and p.attributes.get("error.type") == str(response.status_code)
        ]

    [point, *_] = wait_until(failed_durations, timeout=15)
    assert point.attributes == {
        "http.request.method": "POST",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.route": "/v1/chat",
        "http.response.status_code": response.status_code,
        "error.type": str(response.status_code),
    }


@IN_PROCESS_DEPRECATIONS
def test_server_spans_are_named_by_route_templates(
    emulator: Emulator, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: a route with a path parameter and a plain Starlette route (the docs page)."""
    admin_key = f"admin-{uuid.uuid4().hex}"
    key_path = f"/admin/keys/key_{uuid.uuid4().hex[:16]}"
    with run_http_receiver() as receiver:
        settings = in_process_settings(
            emulator,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            ADMIN_API_KEY=admin_key,
        )
        with TestClient(import_create_app(monkeypatch)(settings)) as client:
            assert client.get(key_path, headers={"Authorization": f"Bearer {admin_key}"}).status_code == 404
            assert client.get("/docs").status_code == 200
            assert client.get("/healthz").status_code == 200

        def by_path() -> dict[str, Span] | None:
            spans = {
                str(s.attributes.get("url.path")): s for s in receiver.received.spans() if s.kind == "SERVER"
            }
            return spans if {key_path, "/docs"} <= set(spans) else None

        spans = wait_until(by_path, timeout=10)
    assert spans[key_path].name == "GET /admin/keys/{key_id}"
    assert spans[key_path].attributes["http.route"] == "/admin/keys/{key_id}"
    assert spans["/docs"].name == "GET /docs" and spans["/docs"].attributes["http.route"] == "/docs"
    assert "/healthz" not in spans
    assert not any(admin_key in text for span in spans.values() for text in span.texts())


def test_http_server_metrics_carry_the_stable_attributes(
    traced_gateway: Gateway, grpc_receiver: Receiver, emu: Emulator
) -> None:
    assert post_chat(traced_gateway, f"sizes-{uuid.uuid4().hex}").status_code == 200
    wanted = {
        "http.server.active_requests",
        "http.server.request.body.size",
        "http.server.response.body.size",
    }
    wait_until(lambda: wanted <= grpc_receiver.received.metric_names(), timeout=15)
    points = grpc_receiver.received.metric_points()
    active = [p for p in points if p.name == "http.server.active_requests"]
    assert {p.unit for p in active} == {"{request}"}
    assert {tuple(sorted(p.attributes)) for p in active} == {("http.request.method", "url.scheme")}
    sizes = [
        p
        for p in points
        if p.name == "http.server.request.body.size"
        and p.attributes.get("http.route") == "/v1/chat"
        and p.attributes.get("http.response.status_code") == 200
    ]
    assert sizes and {p.unit for p in sizes} == {"By"}
    assert all(p.total and p.count and p.total / p.count > 0 for p in sizes)
    assert set(sizes[0].attributes) == {
        "http.request.method",
        "url.scheme",
        "network.protocol.version",
        "http.route",
        "http.response.status_code",
    }
