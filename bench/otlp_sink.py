"""A tiny OTLP receiver, over http/protobuf (the gateway's default) or gRPC: accepts every trace and
metrics export and counts them (nothing is stored).

The protocol is BENCH_OTLP_PROTOCOL (`http/protobuf` unless set); the gateways the bench starts export
with the sink's protocol (bench/gateway.py `gateway_env`).
"""

from __future__ import annotations

import os
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.otlp_http_sink import Counts, HttpReceiver
from bench.procs import free_port

PROTOCOLS = ("http/protobuf", "grpc")


def default_protocol() -> str:
    protocol = os.environ.get("BENCH_OTLP_PROTOCOL", "").strip() or PROTOCOLS[0]
    if protocol not in PROTOCOLS:
        raise SystemExit(f"BENCH_OTLP_PROTOCOL must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    return protocol


class _TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, counts: Counts) -> None:
        self._counts = counts

    def Export(  # the generated servicer's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._counts.traces(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsSink(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, counts: Counts) -> None:
        self._counts = counts

    def Export(  # the generated servicer's method name
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._counts.metrics()
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _GrpcReceiver:
    def __init__(self, port: int, counts: Counts) -> None:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceSink(counts), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsSink(counts), self._server)
        self._server.add_insecure_port(f"127.0.0.1:{port}")

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=1)


class OtlpSink:
    """`endpoint` is what OTEL_EXPORTER_OTLP_ENDPOINT should be set to, `protocol` what
    OTEL_EXPORTER_OTLP_PROTOCOL should be (for http/protobuf the gateway appends /v1/traces and
    /v1/metrics to the endpoint)."""

    def __init__(self, protocol: str | None = None) -> None:
        self.protocol = protocol or default_protocol()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._counts = Counts()
        self._receiver: HttpReceiver | _GrpcReceiver = (
            HttpReceiver(self.port, self._counts)
            if self.protocol == "http/protobuf"
            else _GrpcReceiver(self.port, self._counts)
        )

    def start(self) -> OtlpSink:
        self._receiver.start()
        return self

    def stop(self) -> None:
        self._receiver.stop()

    @property
    def spans(self) -> int:
        return self._counts.spans

    @property
    def exports(self) -> int:
        return self._counts.exports

    @property
    def metric_exports(self) -> int:
        return self._counts.metric_exports
