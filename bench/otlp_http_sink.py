"""The OTLP/HTTP side of the bench's receiver: POST /v1/traces and /v1/metrics, protobuf bodies."""

from __future__ import annotations

import gzip
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


class Counts:
    """What both receivers count: spans and trace exports, metric exports (nothing is stored)."""

    def __init__(self) -> None:
        self.spans = 0
        self.exports = 0
        self.metric_exports = 0
        self._lock = threading.Lock()

    def traces(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self._lock:
            self.spans += count
            self.exports += 1

    def metrics(self) -> None:
        with self._lock:
            self.metric_exports += 1


_EMPTY_TRACE_REPLY = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
_EMPTY_METRICS_REPLY = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _handler(counts: Counts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as a collector does: the exporter's session reuses one connection per worker.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # the stdlib handler's method name
            length = int(self.headers.get("Content-Length") or 0)
            body = _decoded(self.rfile.read(length), self.headers.get("Content-Encoding", "").lower())
            if self.path == "/v1/traces":
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                counts.traces(request)
                self._reply(200, _EMPTY_TRACE_REPLY)
            elif self.path == "/v1/metrics":
                metrics_service_pb2.ExportMetricsServiceRequest().ParseFromString(body)
                counts.metrics()
                self._reply(200, _EMPTY_METRICS_REPLY)
            else:
                self._reply(404, b"")

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per export on stderr would drown the bench's own output

    return Handler


class HttpReceiver:
    def __init__(self, port: int, counts: Counts) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(counts))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http-sink", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
