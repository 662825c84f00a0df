"""The gateway's OTLP span encoder writes what the OpenTelemetry exporters' own encoder writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from llm_api.utils.otlp_encoding import encode_span_request


class Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans.extend(spans)  # type: ignore[arg-type]
        return SpanExportResult.SUCCESS


@pytest.fixture
def recorded() -> Iterator[tuple[TracerProvider, Keep]]:
    kept = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "llm-api", "process.pid": 7}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    yield provider, kept
    provider.shutdown()


def parsed(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encode_span_request(spans))


def test_gateway_spans_encode_as_the_sdk_encodes_them(recorded: tuple[TracerProvider, Keep]) -> None:
    provider, kept = recorded
    http = provider.get_tracer("llm_api.http", schema_url="https://opentelemetry.io/schemas/1.21.0")
    genai = provider.get_tracer("llm_api")
    remote = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    for number in range(3):
        parent = trace.set_span_in_context(NonRecordingSpan(remote)) if number == 0 else None
        server = http.start_span(
            "POST",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "url.scheme": "http",
                "server.port": 8000,
                "client.port": 50000 + number,
                "url.path": "",
            },
        )
        with trace.use_span(server):
            client = genai.start_span("chat claude-opus-4-5", kind=SpanKind.CLIENT)
            client.set_attributes(
                {
                    "gen_ai.request.stream": number == 1,
                    "gen_ai.request.temperature": 0.5 * number,
                    "gen_ai.request.max_tokens": -1 if number == 2 else 64,
                    "gen_ai.response.finish_reasons": ["end_turn", "ünïcode"],
                    "llm_api.flags": [True, False],
                    "llm_api.numbers": [1, 2**40],
                    "llm_api.ratios": [0.25],
                    "llm_api.empty": "",
                    "llm_api.same_as_true": 1,
                    "llm_api.true": True,
                }
            )
            client.add_event(
                "retry", {"retry.attempt": 1, "error.type": "upstream_unavailable", "retry.wait_s": 0.02}
            )
            client.add_event("gen_ai.first_chunk")
            if number == 2:
                client.set_status(Status(StatusCode.ERROR, "upstream_unavailable"))
            client.end()
        server.update_name("POST /v1/chat")
        server.set_attributes(
            {"http.route": "/v1/chat", "http.response.status_code": 500 if number == 2 else 200}
        )
        if number == 2:
            server.set_status(Status(StatusCode.ERROR))
        server.end()
    unscoped = provider.get_tracer("")
    unscoped.start_span("bare").end()

    assert len(kept.spans) == 7
    assert parsed(kept.spans) == encode_spans(kept.spans)
    assert parsed(kept.spans[:1]) == encode_spans(kept.spans[:1])
    assert parsed(kept.spans) == encode_spans(kept.spans)  # again, from the cached pairs


def test_spans_it_does_not_write_fall_back_to_the_sdk_encoder(recorded: tuple[TracerProvider, Keep]) -> None:
    provider, kept = recorded
    tracer = provider.get_tracer("llm_api")
    other = SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(1))
    tracer.start_span("linked", links=[Link(other, {"k": "v"})]).end()
    tracer.start_span("plain", attributes={"a": "b"}).end()
    assert parsed(kept.spans) == encode_spans(kept.spans)
