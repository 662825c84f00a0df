"""OTLP span encoding written straight to protobuf wire bytes, for the span exporters.

Why: the exporters' encoder (opentelemetry-exporter-otlp-proto-common) builds a protobuf object per span,
per attribute and per value in Python, about 40 µs per span, and a batch's encoding holds the GIL: a
request that arrives meanwhile waits for it (the c=1 p99). This writes the same message
(`ExportTraceServiceRequest`, checked field for field against that encoder in tests/test_otlp_encoding.py)
with the encoded key/value pairs cached, since most repeat from span to span (method, route, model,
provider). Spans with links, or attribute values of a type it does not know, fall back to that encoder.

Wire format: https://protobuf.dev/programming-guides/encoding/ ; messages from opentelemetry-proto
(collector/trace/v1, trace/v1, common/v1, resource/v1).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind

# The SpanFlags bits the SDK's encoder sets: "has is_remote", and "is remote" for a remote parent.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_CACHE_LIMIT = 16384
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack


class Unsupported(Exception):
    """A span this encoder does not write; the SDK's encoder does."""


_SMALL = [bytes((value,)) for value in range(128)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64  # int64 and enum values are written as 64-bit two's complement
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TAGS = [_varint(number << 3 | 2) for number in range(16)]


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    size = len(payload)
    return _TAGS[number] + (_SMALL[size] if size < 0x80 else _varint(size)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode("utf-8")) if text else b""


def _any_value(value: Any) -> bytes:
    if isinstance(value, bool):  # before int: bool is an int
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(1, value.encode("utf-8"))
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Sequence) and not isinstance(value, Mapping):
        return _field(5, b"".join(_field(1, _any_value(item)) for item in value))
    raise Unsupported(type(value).__name__)


_pairs: dict[tuple[int, str, type, Any], bytes] = {}
_CACHED_TYPES = (str, int, bool, float)


def _key_value(number: int, key: str, value: Any) -> bytes:
    """One KeyValue as field `number` of its message; cached for scalar values (keyed by type too:
    True == 1 == 1.0)."""
    kind = type(value)
    if kind not in _CACHED_TYPES:
        return _field(number, _string(1, key) + _field(2, _any_value(value)))
    cache_key = (number, key, kind, value)
    encoded = _pairs.get(cache_key)
    if encoded is None:
        encoded = _field(number, _string(1, key) + _field(2, _any_value(value)))
        if len(_pairs) < _CACHE_LIMIT:
            _pairs[cache_key] = encoded
    return encoded


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    # The SDK's BoundedAttributes keeps a plain dict: iterating it skips the Mapping ABC's Python-level
    # items() (a third of the encoding time); anything else is iterated as the mapping it is.
    inner = getattr(attributes, "_dict", None)
    items = (inner if isinstance(inner, dict) else attributes).items()
    return b"".join([_key_value(number, key, value) for key, value in items])


def _span_attributes(span: ReadableSpan) -> Mapping[str, Any] | None:
    # `span.attributes` wraps them in a MappingProxyType, which hides the dict underneath.
    return getattr(span, "_attributes", None) or span.attributes


def _span(span: ReadableSpan) -> bytes:
    if span.links:
        raise Unsupported("links")
    context = span.get_span_context()
    if context is None:
        raise Unsupported("no span context")
    parent = span.parent
    out = [
        _field(1, context.trace_id.to_bytes(16, "big")),
        _field(2, context.span_id.to_bytes(8, "big")),
    ]
    if context.trace_state:
        out.append(_string(3, ",".join(f"{key}={value}" for key, value in context.trace_state.items())))
    if parent is not None:
        out.append(_field(4, parent.span_id.to_bytes(8, "big")))
    out.append(_string(5, span.name))
    out.append(b"\x30" + _varint(_KIND[span.kind]))
    out.append(b"\x39" + _fixed64(span.start_time or 0))
    out.append(b"\x41" + _fixed64(span.end_time or 0))
    out.append(_attributes(9, _span_attributes(span)))
    if span.dropped_attributes:
        out.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        encoded = (
            b"\x09" + _fixed64(event.timestamp) + _string(2, event.name) + _attributes(3, event.attributes)
        )
        if event.dropped_attributes:
            encoded += b"\x20" + _varint(event.dropped_attributes)
        out.append(_field(11, encoded))
    if span.dropped_events:
        out.append(b"\x60" + _varint(span.dropped_events))
    if span.dropped_links:
        out.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    encoded_status = _string(2, status.description or "")
    if status.status_code.value:
        encoded_status += b"\x18" + _varint(status.status_code.value)
    out.append(_field(15, encoded_status))
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    out.append(b"\x85\x01" + _fixed32(flags))
    return _field(2, b"".join(out))


_resources: dict[int, tuple[Resource, bytes]] = {}
_scopes: dict[tuple[str, str | None, str | None], bytes] = {}


def _resource(resource: Resource) -> bytes:
    known = _resources.get(id(resource))
    if known is not None and known[0] is resource:
        return known[1]
    encoded = _field(1, _attributes(1, resource.attributes))
    if len(_resources) < 64:
        _resources[id(resource)] = (resource, encoded)
    return encoded


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return _field(1, b"")  # present and empty, as the SDK's encoder writes it
    key = (scope.name, scope.version, scope.schema_url)
    encoded = _scopes.get(key)
    if encoded is None:
        encoded = _field(
            1, _string(1, scope.name) + _string(2, scope.version or "") + _attributes(3, scope.attributes)
        )
        if len(_scopes) < 256:
            _scopes[key] = encoded
    return encoded


class EncodedSpans(Sequence[ReadableSpan]):
    """A batch already encoded as a serialized `ExportTraceServiceRequest`, for the span exporters here,
    which send `payload` as it is. Its length is the batch's span count (the exporters' own metrics count
    spans); it holds no span objects. Serialized requests concatenate into one valid request (protobuf
    merges repeated fields), which is how the span relay (utils/otlp_relay.py) joins batches."""

    __slots__ = ("payload", "span_count")

    def __init__(self, payload: bytes, span_count: int) -> None:
        self.payload = payload
        self.span_count = span_count

    def __len__(self) -> int:
        return self.span_count

    def __getitem__(self, index: Any) -> Any:
        raise TypeError("an encoded span batch holds no span objects")


def encode_span_request(spans: Sequence[ReadableSpan]) -> bytes:
    """`ExportTraceServiceRequest` for `spans`, serialized (what `encode_spans(spans)` serializes to)."""
    if isinstance(spans, EncodedSpans):
        return spans.payload
    # Grouped by resource identity: hashing a Resource serializes its attributes to JSON, per span.
    grouped: dict[int, tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = {}
    try:
        for span in spans:
            resource = span.resource
            entry = grouped.get(id(resource))
            if entry is None:
                entry = grouped[id(resource)] = (resource, {})
            entry[1].setdefault(span.instrumentation_scope or None, []).append(_span(span))
    except Unsupported:
        serialized: bytes = encode_spans(spans).SerializePartialToString()
        return serialized
    out = []
    for resource, scopes in grouped.values():
        body = [_resource(resource)]
        for scope, encoded_spans in scopes.items():
            scope_spans = _scope(scope) + b"".join(encoded_spans)
            if scope is not None and scope.schema_url:
                scope_spans += _string(3, scope.schema_url)
            body.append(_field(2, scope_spans))
        if resource.schema_url:
            body.append(_string(3, resource.schema_url))
        out.append(_field(1, b"".join(body)))
    return b"".join(out)
