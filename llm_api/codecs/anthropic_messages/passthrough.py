"""The same-vendor path: an Anthropic client's body to a Claude model, changed only where it must be.

`prepare_passthrough` makes the few changes the gateway needs on the client's body (everything else,
`cache_control`, `context_management`, signed thinking blocks, new fields, reaches Anthropic as sent);
`PassthroughStreamObserver` reads the upstream's events, relayed byte for byte, for what the gateway
needs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llm_api.chat_model import StopReason, Usage
from llm_api.codecs import WRONG_SHAPE
from llm_api.codecs.anthropic_messages.request_encode import MIN_BUDGET
from llm_api.codecs.anthropic_messages.response import stop_reason_of, usage_of
from llm_api.codecs.anthropic_messages.stream import merged_usage


@dataclass(frozen=True, slots=True)
class Passthrough:
    """The body to send, and what was removed (`dropped`) or lowered (`clamped`) in it."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()
    clamped: tuple[str, ...] = ()


def prepare_passthrough(
    body: Mapping[str, Any], *, remove: Collection[str] = (), max_tokens_limit: int | None = None
) -> Passthrough:
    """A copy of the validated client body for the upstream (the client's dict is left as it was).

    `remove`: top-level parameters the model does not take (`temperature` on the newest Claude models),
    dropped only if present. `max_tokens_limit`: the model's output maximum; a larger `max_tokens` is
    lowered to it, and a thinking budget that no longer fits under it (Anthropic wants it below
    `max_tokens`) is lowered too, named `thinking.budget_tokens`.
    """
    out = dict(body)
    dropped = tuple(name for name in remove if name in out and name not in ("model", "messages"))
    for name in dropped:
        del out[name]
    clamped: list[str] = []
    max_tokens = out.get("max_tokens")
    if max_tokens_limit is not None and isinstance(max_tokens, int) and max_tokens > max_tokens_limit:
        out["max_tokens"] = max_tokens = max_tokens_limit
        clamped.append("max_tokens")
        thinking = out.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
        if isinstance(thinking, Mapping) and isinstance(budget, int) and budget >= max_tokens:
            out["thinking"] = {**thinking, "budget_tokens": max(MIN_BUDGET, max_tokens - MIN_BUDGET)}
            clamped.append("thinking.budget_tokens")
    return Passthrough(body=out, dropped=dropped, clamped=tuple(clamped))


class PassthroughStreamObserver:
    """Reads a relayed Messages stream's events (`observe` each one's name and raw `data`) for what the
    gateway needs: `id`, `model`, `usage` (input from `message_start`, output and any count it carries
    from the cumulative `message_delta`), `stop_reason` (neutral), `done` (`message_stop` seen), and an
    in-stream `error` (the event's `error` object). Only those events are parsed; content deltas, the
    bulk of a stream, are not."""

    _PARSED = frozenset({"message_start", "message_delta", "error"})

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.usage = Usage()
        self.stop_reason: StopReason | None = None
        self.stop_sequence: str | None = None
        self.done = False
        self.error: Mapping[str, Any] | None = None

    def observe(self, name: str, data: bytes) -> None:
        if name == "message_stop":
            self.done = True
            return
        if name and name not in self._PARSED:
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            # The client gets the bytes as they are; the gateway can read nothing in them, but an
            # unreadable `error` event is still an error.
            if name == "error":
                self.error = {"type": "api_error"}
            return
        try:
            self._read(event.get("type") or name, event)
        except WRONG_SHAPE:
            return  # a known event of an unexpected shape: what was read before it stands

    def _read(self, kind: str, event: Mapping[str, Any]) -> None:
        if kind == "message_start":
            message = event["message"]
            self.id = str(message.get("id", ""))
            self.model = str(message.get("model", ""))
            self.usage = usage_of(message)
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop_reason = stop_reason_of(delta.get("stop_reason"))
            stop_sequence = delta.get("stop_sequence")
            self.stop_sequence = stop_sequence if isinstance(stop_sequence, str) else None
            self.usage = merged_usage(self.usage, event.get("usage") or {})
        elif kind == "error":
            error = event.get("error")
            self.error = error if isinstance(error, Mapping) else {"type": "api_error"}
        elif kind == "message_stop":
            self.done = True
