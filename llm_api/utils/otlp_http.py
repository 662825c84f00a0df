"""The OTLP http/protobuf span exporter with the gateway's encoder (utils/otlp_encoding.py).

The official exporter encodes inside `export()` with no hook, so `export()` is written again here, line
for line the official one (opentelemetry-exporter-otlp-proto-http 1.45) except for the encoding call:
the same exporter metrics, size limit and HTTP transport (headers, compression, TLS, retries), all
built by the official constructor. It also sends batches encoded elsewhere (`EncodedSpans`, from the
span relay's workers) as they are. If a later release renames what it relies on, `export()` falls back
to the official one instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from llm_api.utils.otlp_encoding import EncodedSpans, encode_span_request

log = logging.getLogger(__name__)
_RELIED_ON = ("_shutdown", "_metrics", "_client", "_max_request_size")


class HttpSpanExporter(OTLPSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or not all(hasattr(self, name) for name in _RELIED_ON):
            if isinstance(spans, EncodedSpans):  # the official export() cannot send encoded bytes
                log.error("Dropping an encoded span batch: this exporter release is not supported")
                return SpanExportResult.FAILURE
            return super().export(spans)
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = encode_span_request(spans)
            except Exception as error:  # as the official exporter: a batch that cannot be encoded is dropped
                log.error("Failed to encode span batch: %s", type(error).__name__)
                result.error = error
                return SpanExportResult.FAILURE
            if 0 < self._max_request_size < len(serialized):
                log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            exported = self._client.export(serialized)
            if not exported.success:
                result.error = exported.error
                result.error_attrs = (
                    {"http.response.status_code": exported.status_code}
                    if exported.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
