"""The same-vendor path: an OpenAI client's body to an OpenAI model, changed only where it must be.

`prepare_passthrough` makes the few changes the gateway needs on the client's body; the
`PassthroughStreamObserver` reads the upstream's stream payloads, which are relayed byte for byte, for
what the gateway needs (usage, finish reason, errors), and says which payload to hold back: the
usage-only chunk, when the client did not ask for it (the gateway always does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llm_api.chat_model import StopReason, Usage
from llm_api.codecs import WRONG_SHAPE
from llm_api.codecs.openai_chat._common import stop_reason_of, usage_from

MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class Passthrough:
    """The body to send; what was removed or lowered; whether the CLIENT asked for stream usage."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()
    clamped: tuple[str, ...] = ()
    include_usage: bool = False


def prepare_passthrough(
    body: Mapping[str, Any],
    *,
    remove: Collection[str] = (),
    max_tokens_limit: int | None = None,
    rename_max_tokens: str | None = None,
) -> Passthrough:
    """A copy of the validated client body for the upstream (the client's dict is left as it was).

    `remove`: top-level parameters the model does not take (dropped only if present). `max_tokens_limit`:
    the model's output maximum; a larger `max_tokens`/`max_completion_tokens` is lowered to it.
    `rename_max_tokens`: the name the model wants ("max_completion_tokens" for reasoning models), if
    the client used the other one. Streams always ask for `stream_options.include_usage`.
    """
    out = dict(body)
    dropped = tuple(name for name in remove if name in out and name not in ("model", "messages"))
    for name in dropped:
        del out[name]
    if rename_max_tokens in MAX_TOKENS_FIELDS:
        for name in MAX_TOKENS_FIELDS:
            if name != rename_max_tokens and name in out:
                value = out.pop(name)
                if out.get(rename_max_tokens) is None:
                    out[rename_max_tokens] = value
    clamped: list[str] = []
    if max_tokens_limit is not None:
        for name in MAX_TOKENS_FIELDS:
            value = out.get(name)
            if isinstance(value, int) and value > max_tokens_limit:
                out[name] = max_tokens_limit
                clamped.append(name)
    include_usage = False
    if out.get("stream") is True:
        options = out.get("stream_options")
        options = dict(options) if isinstance(options, Mapping) else {}
        include_usage = options.get("include_usage") is True
        out["stream_options"] = {**options, "include_usage": True}
    return Passthrough(body=out, dropped=dropped, clamped=tuple(clamped), include_usage=include_usage)


class PassthroughStreamObserver:
    """Watches the `data:` payloads of an upstream OpenAI stream relayed unchanged to the client.

    `observe(payload)` → True when the payload is to be forwarded. Only the usage-only chunk is ever
    held back (when the client did not ask for usage). A payload that is not JSON is forwarded: the
    relay is not the place to judge it.
    """

    def __init__(self, *, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._tool_calls = False
        self._finish: Any = None
        self.id: str = ""
        self.model: str = ""
        self.usage: Usage | None = None
        self.error: Mapping[str, Any] | None = None
        self.done = False

    @property
    def stop_reason(self) -> StopReason | None:
        return None if self._finish is None else stop_reason_of(self._finish, tool_calls=self._tool_calls)

    def observe(self, data: bytes) -> bool:
        payload = data.strip()
        if payload == b"[DONE]":
            self.done = True
            return True
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        error = chunk.get("error")
        if error:
            self.error = error if isinstance(error, Mapping) else {"message": None, "type": None}
            return True
        if not self.id:
            self.id, self.model = str(chunk.get("id") or ""), str(chunk.get("model") or "")
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, Mapping):
                continue
            delta = choice.get("delta")
            if isinstance(delta, Mapping) and delta.get("tool_calls"):
                self._tool_calls = True
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        usage = chunk.get("usage")
        if isinstance(usage, Mapping) and usage:
            # A usage the gateway cannot read stays None (the caller sees it), and the client still gets it.
            with contextlib.suppress(*WRONG_SHAPE):
                self.usage = usage_from(usage)
            if not choices and not self._include_usage:
                return False
        return True
