"""In-memory state of the emulator: scripted behaviour (config, turns, faults, models) and recording."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from llm_api.emulator.catalogue import ModelEntry, Provider, default_models

__all__ = ["Provider"]  # re-exported for the provider modules

Outcome = Literal["completed", "client_disconnected", "error", "in_progress"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai")

DEFAULT_TEXT = "Hello from the emulator."
DEFAULT_THINKING = "Let me think about this step by step."
DEFAULT_MAX_RECORDS = 1000
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024


class ControlError(ValueError):
    """A control-plane request body was invalid (answered with HTTP 400)."""


@dataclass
class ToolCallSpec:
    """One scripted tool call: the model "calls" ``name`` with ``input``."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # default: a fresh ``toolu_...`` / ``call_...`` id per answer


@dataclass
class EmulatorConfig:
    """How successful responses look. Every field can be changed by ``POST /_emulator/config``."""

    text: str = DEFAULT_TEXT
    chunks: int | None = None
    blocks: list[str] | None = None
    first_token_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    stop_reason: str = "end_turn"
    ping_before_first: bool = False
    tool_calls: list[ToolCallSpec] | None = None  # every answer calls these (after the text)
    thinking_text: str = DEFAULT_THINKING
    cached_tokens: int = 0  # OpenAI cached_tokens / Anthropic cache_read_input_tokens
    cache_creation_tokens: int = 0  # Anthropic cache_creation_input_tokens

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Turn:
    """One scripted answer, consumed by exactly one generating request (FIFO)."""

    provider: Provider | None = None
    text: str | None = None
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    stop_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by exactly one upstream request."""

    provider: Provider | None = None
    status: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    hang: bool = False
    delay_s: float = 0.0
    drop: bool = False
    garbage: bool = False  # a 200 whose body is not the provider's shape (JSON) or not JSON (stream)
    fail_after_chunks: int | None = None
    error_type: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RequestRecord:
    """What the emulator saw and what it answered, for ``GET /_emulator/requests``.

    ``body`` is the parsed JSON exactly as received (unknown fields included); ``headers`` are
    all request headers with credentials replaced by a fingerprint (see ``fingerprint``).
    """

    id: int
    provider: Provider
    method: str
    path: str
    query: str
    body: Any
    body_bytes: int
    headers: dict[str, str]
    received_at: float
    stream: bool = False
    status: int | None = None
    outcome: Outcome = "in_progress"
    chunks_sent: int = 0
    disconnected_at: float | None = None
    finished_at: float | None = None
    fault: dict[str, Any] | None = None
    turn: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def finish(self, outcome: Outcome) -> None:
        if self.outcome == "in_progress":
            self.outcome = outcome
            self.finished_at = time.time()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass
class RecordLog:
    """The newest records only: at most ``max_records`` and about ``max_bytes`` of bodies."""

    max_records: int = DEFAULT_MAX_RECORDS
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES
    _records: deque[RequestRecord] = field(default_factory=deque)
    _bytes: int = 0

    def append(self, record: RequestRecord) -> None:
        self._records.append(record)
        self._bytes += record.body_bytes
        # The newest record always stays, however large its body.
        while len(self._records) > 1 and (
            len(self._records) > self.max_records or self._bytes > self.max_bytes
        ):
            self._bytes -= self._records.popleft().body_bytes

    def clear(self) -> None:
        self._records.clear()
        self._bytes = 0

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def body_bytes(self) -> int:
        return self._bytes


@dataclass
class EmulatorState:
    """All mutable state; one instance per app (single process, single event loop)."""

    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    faults: deque[Fault] = field(default_factory=deque)
    turns: deque[Turn] = field(default_factory=deque)
    models: list[ModelEntry] = field(default_factory=default_models)
    records: RecordLog = field(
        default_factory=lambda: RecordLog(
            _env_int("EMULATOR_MAX_RECORDS", DEFAULT_MAX_RECORDS),
            _env_int("EMULATOR_MAX_RECORD_BYTES", DEFAULT_MAX_RECORD_BYTES),
        )
    )
    counts: dict[Provider, int] = field(default_factory=lambda: dict.fromkeys(PROVIDERS, 0))
    _next_id: int = 1

    def reset(self) -> None:
        self.config = EmulatorConfig()
        self.faults.clear()
        self.turns.clear()
        self.models = default_models()
        self.records.clear()
        self.counts = dict.fromkeys(PROVIDERS, 0)

    def reset_models(self) -> None:
        self.models = default_models()

    def pop_fault(self, provider: Provider) -> Fault | None:
        """Remove and return the oldest queued fault that applies to ``provider``."""
        for fault in self.faults:
            if fault.provider is None or fault.provider == provider:
                self.faults.remove(fault)
                return fault
        return None

    def pop_turn(self, provider: Provider) -> Turn | None:
        """Remove and return the oldest scripted turn that applies to ``provider``."""
        for turn in self.turns:
            if turn.provider is None or turn.provider == provider:
                self.turns.remove(turn)
                return turn
        return None

    def new_record(self, provider: Provider, **values: Any) -> RequestRecord:
        record = RequestRecord(id=self._next_id, provider=provider, received_at=time.time(), **values)
        self._next_id += 1
        self.counts[provider] += 1
        self.records.append(record)
        return record

    def stats(self) -> dict[str, Any]:
        in_progress = sum(1 for record in self.records if record.outcome == "in_progress")
        return {
            "requests": dict(self.counts),
            "in_progress": in_progress,
            "recorded": len(self.records),
            "recorded_body_bytes": self.records.body_bytes,
        }
