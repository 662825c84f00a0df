"""A real OTLP receiver on loopback for the tests: gRPC (TraceService/MetricsService Export) or
http/protobuf (POST /v1/traces, /v1/metrics), keeping what it received in memory."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SPAN_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass
class Span:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    start_ns: int
    end_ns: int

    def texts(self) -> list[str]:
        """Every string the span carries (for checking that no prompt text leaked)."""
        found = [self.name, self.status_message]
        for attrs in [self.attributes, self.resource, *(attrs for _, attrs in self.events)]:
            found.extend(str(value) for value in attrs.values())
        found.extend(name for name, _ in self.events)
        return found


@dataclass
class MetricPoint:
    name: str
    unit: str
    attributes: dict[str, Any]
    count: int | None
    total: float | None


@dataclass
class Received:
    lock: threading.Lock = field(default_factory=threading.Lock)
    trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)
    # With run_http_receiver(sender_of=…): the process that sent each of trace_requests (None: not found).
    trace_senders: list[int | None] = field(default_factory=list)

    def spans(self) -> list[Span]:
        with self.lock:
            requests = list(self.trace_requests)
        spans = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(
                            Span(
                                name=span.name,
                                kind=SPAN_KINDS.get(span.kind, str(span.kind)),
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes=_attributes(span.attributes),
                                events=[(event.name, _attributes(event.attributes)) for event in span.events],
                                status_code=span.status.code,
                                status_message=span.status.message,
                                resource=resource,
                                start_ns=span.start_time_unix_nano,
                                end_ns=span.end_time_unix_nano,
                            )
                        )
        return spans

    def metric_points(self) -> list[MetricPoint]:
        with self.lock:
            requests = list(self.metric_requests)
        points = []
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data")
                        if kind not in ("histogram", "sum", "gauge"):
                            continue
                        for point in getattr(metric, kind).data_points:
                            if kind == "histogram":
                                count, total = point.count, point.sum
                            else:
                                value = point.as_double if point.HasField("as_double") else point.as_int
                                count, total = None, float(value)
                            attributes = _attributes(point.attributes)
                            points.append(MetricPoint(metric.name, metric.unit, attributes, count, total))
        return points

    def metric_names(self) -> set[str]:
        return {point.name for point in self.metric_points()}


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            self.received.trace_requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            self.received.metric_requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@dataclass
class Receiver:
    endpoint: str
    protocol: str
    received: Received


@contextmanager
def run_grpc_receiver() -> Iterator[Receiver]:
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Receiver(f"http://127.0.0.1:{port}", "grpc", received)
    finally:
        server.stop(grace=None).wait()


@contextmanager
def run_http_receiver(sender_of: Callable[[int, int], int | None] | None = None) -> Iterator[Receiver]:
    """`sender_of(client_port, server_port)`: the pid of the process holding the client end of that TCP
    connection, to note who sent each trace export."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/v1/traces":
                request: Any = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                ports = (self.client_address[1], self.server.server_address[1])
                sender = sender_of(*ports) if sender_of else None
                with received.lock:
                    received.trace_requests.append(request)
                    received.trace_senders.append(sender)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            elif self.path == "/v1/metrics":
                request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                with received.lock:
                    received.metric_requests.append(request)
                reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", "http/protobuf", received)
    finally:
        server.shutdown()
        server.server_close()
