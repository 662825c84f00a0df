"""The small Protocol every provider adapter implements, and the provider-neutral types it speaks."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["user", "assistant", "system"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """What an adapter sends upstream; unsupported parameters were already removed (None)."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float | None
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


@dataclass(slots=True)
class Completion:
    id: str
    content: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None


@dataclass(frozen=True, slots=True)
class TextDeltas:
    """Text deltas that arrived in one upstream read, in order.

    The relay sends each as its own SSE event, all in one socket write: nothing waits for a later delta,
    but deltas that came together do not cost one write each.
    """

    texts: tuple[str, ...]


@dataclass(slots=True)
class StreamSummary:
    """The last item of every stream: ids, usage and why it stopped."""

    id: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None


StreamItem = TextDeltas | StreamSummary


class Provider(Protocol):
    """One upstream vendor. Adapters raise only `errors.UpstreamError` subclasses."""

    name: str

    async def complete(self, request: ProviderRequest) -> Completion: ...

    def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield text deltas as they arrive, then exactly one StreamSummary; closing it closes upstream."""
        ...

    async def aclose(self) -> None: ...


STOP_REASONS: dict[str, str] = {
    # Anthropic
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    # OpenAI
    "stop": "end_turn",
    "length": "max_tokens",
}


def normalise_stop_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return STOP_REASONS.get(reason, reason)
