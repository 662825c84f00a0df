"""The small Protocol every provider adapter implements, and the types it speaks besides the neutral
chat model (llm_api.chat_model).

Two kinds of call go through an adapter:
- translated: the service hands it a neutral `Chat`; `encode` turns it into the vendor's body, and the
  answer comes back decoded (`ChatResult`, or a stream of `EventBatch`es);
- relayed (same vendor: the client spoke the vendor's own format): the client's body, fitted to the
  model, is sent as it is, and the answer's bytes come back untouched (`RelayedResponse`, `RawFrames`),
  the adapter parsing only what the gateway needs (usage, stop reason, errors).
Every stream ends with exactly one `Outcome`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from llm_api.chat_model import EMPTY, Chat, ChatResult, EventBatch, Usage
from llm_api.services.capabilities import ModelCapabilities


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """A vendor body built from a neutral chat: the parameters it could not carry (`dropped`) or had to
    lower (`clamped`), and whether the answer's forced JSON tool call must become its text."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()
    clamped: tuple[str, ...] = ()
    unwrap_json_tool: bool = False


@dataclass(frozen=True, slots=True)
class FittedBody:
    """A client's own-format body made acceptable to the model: what was removed, what was lowered."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()
    clamped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """What an adapter sends: a body in the vendor's own format, already fitted to the model.

    `headers` and `query` are forwarded to the upstream (Anthropic's `anthropic-beta`, `?beta=true`).
    `include_usage` (relayed OpenAI streams): whether the client asked for the usage chunk, which the
    gateway always asks for. `unwrap_json_tool`: the answer's forced JSON tool call becomes its text.
    `max_tokens` and `temperature` are what was sent, for telemetry.
    """

    model: str
    body: Mapping[str, Any]
    stream: bool = False
    relay: bool = False
    include_usage: bool = True
    unwrap_json_tool: bool = False
    headers: Mapping[str, str] = EMPTY
    query: Mapping[str, str] = EMPTY
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended: ids, why it stopped, and the usage (the last item of every stream)."""

    id: str = ""
    model: str = ""
    stop_reason: str | None = None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class RelayedResponse:
    """A same-vendor answer: the upstream's JSON bytes, to be sent on as they are."""

    body: bytes
    outcome: Outcome

    # The names ChatResult has, so telemetry reads either.
    @property
    def id(self) -> str:
        return self.outcome.id

    @property
    def model(self) -> str:
        return self.outcome.model

    @property
    def stop_reason(self) -> str | None:
        return self.outcome.stop_reason

    @property
    def usage(self) -> Usage:
        return self.outcome.usage


@dataclass(frozen=True, slots=True)
class RawFrames:
    """SSE frames of a same-vendor stream that arrived in one upstream read, to be sent on as they are."""

    data: bytes
    # Whether they hold more than the stream's opening (message_start, pings): retries stop there.
    content: bool = True


StreamItem = EventBatch | RawFrames | Outcome


class Provider(Protocol):
    """One upstream vendor. Adapters raise only `errors.UpstreamError` subclasses when calling it."""

    name: str
    # The wire format it speaks ("openai", "anthropic"): a client in that format is relayed.
    wire_format: str

    def encode(self, chat: Chat, capabilities: ModelCapabilities) -> EncodedBody:
        """The vendor body for a neutral chat (raises `UnsupportedParameter` for what cannot be sent)."""
        ...

    def fit(self, body: Mapping[str, Any], capabilities: ModelCapabilities) -> FittedBody:
        """The client's own-format body with what the model refuses removed and max tokens clamped."""
        ...

    async def complete(self, request: ProviderRequest) -> ChatResult: ...

    def stream(self, request: ProviderRequest) -> AsyncGenerator[EventBatch | Outcome, None]:
        """Event batches as they arrive, then exactly one Outcome; closing it closes the upstream."""
        ...

    async def relay(self, request: ProviderRequest) -> RelayedResponse: ...

    def relay_stream(self, request: ProviderRequest) -> AsyncGenerator[RawFrames | Outcome, None]:
        """The upstream's SSE frames as they arrive, then exactly one Outcome."""
        ...

    async def count_tokens(self, request: ProviderRequest) -> int | None:
        """The upstream's own count of a request's input tokens; None when the vendor has no such API."""
        ...

    async def aclose(self) -> None: ...
