"""OpenTelemetry set-up (placeholder until the tracing work lands)."""

from __future__ import annotations
