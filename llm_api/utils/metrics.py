"""The gateway's own metric instruments (GenAI client conventions plus rate-limit rejections).

    gen_ai.client.operation.duration             histogram  s          one upstream call, retries included
    gen_ai.client.token.usage                    histogram  {token}    gen_ai.token.type = input | output
    gen_ai.client.operation.time_to_first_chunk  histogram  s          streams only
    llm_api.rate_limit.rejections                counter    {request}  llm_api.rate_limit.scope
    llm_api.usage.rows_dropped                   counter    {row}      usage rows the ledger could not keep

The HTTP server metrics (`http.server.request.duration` and the rest) are recorded by utils/server_span.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.metrics import MeterProvider
from opentelemetry.util.types import AttributeValue

# Bucket boundaries recommended by the GenAI semantic conventions.
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"  # noqa: S105 - a metric name
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
RATE_LIMIT_REJECTIONS = "llm_api.rate_limit.rejections"
USAGE_ROWS_DROPPED = "llm_api.usage.rows_dropped"

Attributes = Mapping[str, AttributeValue]


class GatewayMetrics:
    """Instruments created once per worker from that worker's meter provider."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("llm_api")
        self._operation_duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="Duration of one upstream chat call, retries included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._token_usage = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Input and output tokens per upstream chat call.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._time_to_first_chunk = meter.create_histogram(
            TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from issuing a streamed chat call to receiving its first text chunk.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        self._rate_limit_rejections = meter.create_counter(
            RATE_LIMIT_REJECTIONS,
            unit="{request}",
            description="Requests refused with 429 by the gateway's own rate limiter.",
        )
        self._usage_rows_dropped = meter.create_counter(
            USAGE_ROWS_DROPPED,
            unit="{row}",
            description="Usage ledger rows dropped: the queue was full while the database was failing.",
        )

    def record_operation(self, duration_s: float, *, attributes: Attributes) -> None:
        """One finished upstream call; `attributes` carry error.type when it failed."""
        self._operation_duration.record(duration_s, attributes=attributes)

    def record_token_usage(self, *, input_tokens: int, output_tokens: int, attributes: Attributes) -> None:
        self._token_usage.record(input_tokens, attributes={**attributes, "gen_ai.token.type": "input"})
        self._token_usage.record(output_tokens, attributes={**attributes, "gen_ai.token.type": "output"})

    def record_time_to_first_chunk(self, seconds: float, *, attributes: Attributes) -> None:
        self._time_to_first_chunk.record(seconds, attributes=attributes)

    def record_rate_limit_rejection(self, *, scope: str, key_id: str | None = None) -> None:
        """Count one 429 from the gateway's limiter: scope "key" (with its key id) or "auth_failure"."""
        attributes: dict[str, AttributeValue] = {"llm_api.rate_limit.scope": scope}
        if key_id is not None:
            attributes["llm_api.key_id"] = key_id
        self._rate_limit_rejections.add(1, attributes=attributes)

    def record_usage_rows_dropped(self, count: int) -> None:
        self._usage_rows_dropped.add(count)
