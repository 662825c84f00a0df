"""Helpers shared by the provider adapters."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import orjson

from llm_api.chat_model import MessageDelta, MessageStart, StreamEvent, Usage
from llm_api.errors import UpstreamError
from llm_api.services.providers.base import Outcome


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the upstream asked us to wait: `retry-after-ms`, else `retry-after` (seconds or a date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())


def unusable_response(provider: str) -> UpstreamError:
    """An answer that parsed as HTTP but not as the provider's documented shape."""
    return UpstreamError(f"{provider} returned a response the gateway could not use", provider=provider)


def parse_json_object(data: bytes, *, provider: str) -> dict[str, Any]:
    """A JSON object from an upstream body or event; anything else is an unusable response."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise unusable_response(provider) from exc
    if not isinstance(value, dict):
        raise unusable_response(provider)
    return value


class OutcomeTracker:
    """Follows a decoded stream's MessageStart and MessageDelta to know how it ended."""

    __slots__ = ("ended", "id", "model", "stop_reason", "usage")

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.stop_reason: str | None = None
        self.usage = Usage()
        self.ended = False

    def track(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for event in events:
            if isinstance(event, MessageStart):
                self.id, self.model, self.usage = event.id, event.model, event.usage
            elif isinstance(event, MessageDelta):
                self.stop_reason, self.usage, self.ended = event.stop_reason, event.usage, True
        return events

    def outcome(self) -> Outcome:
        return Outcome(id=self.id, model=self.model, stop_reason=self.stop_reason, usage=self.usage)
