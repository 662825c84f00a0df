"""A tiny OTLP/gRPC receiver: accepts every trace and metrics export and counts them (nothing is stored)."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.procs import free_port


class _TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self.exports = 0
        self._lock = threading.Lock()

    def Export(  # the generated servicer's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self._lock:
            self.spans += count
            self.exports += 1
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsSink(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.exports = 0

    def Export(  # the generated servicer's method name
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.exports += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpSink:
    """`endpoint` is what OTEL_EXPORTER_OTLP_ENDPOINT should be set to."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._sink = _TraceSink()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._metrics = _MetricsSink()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._sink, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self._metrics, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")

    def start(self) -> OtlpSink:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1)

    @property
    def spans(self) -> int:
        return self._sink.spans

    @property
    def exports(self) -> int:
        return self._sink.exports

    @property
    def metric_exports(self) -> int:
        return self._metrics.exports
