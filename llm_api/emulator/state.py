"""In-memory state of the emulator: scripted behaviour (config, fault queue) and recording."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Provider = Literal["anthropic", "openai"]
Outcome = Literal["completed", "client_disconnected", "error", "in_progress"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai")

DEFAULT_TEXT = "Hello from the emulator."


class ControlError(ValueError):
    """A control-plane request body was invalid (answered with HTTP 400)."""


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
    """What the emulator saw and what it answered, for ``GET /_emulator/requests``."""

    id: int
    provider: Provider
    path: str
    body: Any
    headers: dict[str, str]
    received_at: float
    stream: bool = False
    status: int | None = None
    outcome: Outcome = "in_progress"
    chunks_sent: int = 0
    disconnected_at: float | None = None
    finished_at: float | None = None
    fault: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def finish(self, outcome: Outcome) -> None:
        if self.outcome == "in_progress":
            self.outcome = outcome
            self.finished_at = time.time()


def _check_type(name: str, value: Any, types: tuple[type, ...], *, nullable: bool) -> None:
    if value is None and nullable:
        return
    # bool is a subclass of int: refuse it where a number is expected.
    if isinstance(value, bool) and bool not in types:
        raise ControlError(f"{name}: wrong type")
    if not isinstance(value, types):
        raise ControlError(f"{name}: wrong type")


_CONFIG_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "text": ((str,), False),
    "chunks": ((int,), True),
    "blocks": ((list,), True),
    "first_token_delay_s": ((int, float), False),
    "chunk_delay_s": ((int, float), False),
    "stop_reason": ((str,), False),
    "ping_before_first": ((bool,), False),
}

_FAULT_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "provider": ((str,), True),
    "status": ((int,), True),
    "retry_after": ((str, int, float), True),
    "retry_after_ms": ((str, int, float), True),
    "hang": ((bool,), False),
    "delay_s": ((int, float), False),
    "drop": ((bool,), False),
    "garbage": ((bool,), False),
    "fail_after_chunks": ((int,), True),
    "error_type": ((str,), True),
    "message": ((str,), True),
}


def _check_fields(name: str, raw: Any, spec: dict[str, tuple[tuple[type, ...], bool]]) -> None:
    if not isinstance(raw, dict):
        raise ControlError(f"{name}: expected a JSON object")
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise ControlError(f"{name}: unknown field(s) {unknown}")
    for key, value in raw.items():
        types, nullable = spec[key]
        _check_type(f"{name}.{key}", value, types, nullable=nullable)


def merge_config(current: EmulatorConfig, raw: Any) -> EmulatorConfig:
    """Return ``current`` updated with the fields present in ``raw`` (validated)."""
    _check_fields("config", raw, _CONFIG_TYPES)
    values = {f.name: getattr(current, f.name) for f in fields(EmulatorConfig)}
    values.update(raw)
    blocks = values["blocks"]
    if blocks is not None and (not blocks or not all(isinstance(b, str) for b in blocks)):
        raise ControlError("config.blocks: expected a non-empty list of strings")
    if values["chunks"] is not None and values["chunks"] < 1:
        raise ControlError("config.chunks: must be >= 1")
    if values["first_token_delay_s"] < 0 or values["chunk_delay_s"] < 0:
        raise ControlError("config: delays must be >= 0")
    return EmulatorConfig(**values)


def parse_faults(raw: Any) -> list[Fault]:
    """Parse the body of ``POST /_emulator/faults``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("faults"), list):
        raise ControlError('faults: expected {"faults": [...], "provider": ...}')
    default_provider = raw.get("provider")
    if default_provider is not None and default_provider not in PROVIDERS:
        raise ControlError(f"provider: expected one of {list(PROVIDERS)} or null")
    unknown = sorted(set(raw) - {"faults", "provider"})
    if unknown:
        raise ControlError(f"faults: unknown field(s) {unknown}")
    result: list[Fault] = []
    for i, item in enumerate(raw["faults"]):
        _check_fields(f"faults[{i}]", item, _FAULT_TYPES)
        values = dict(item)
        values.setdefault("provider", default_provider)
        if values["provider"] is not None and values["provider"] not in PROVIDERS:
            raise ControlError(f"faults[{i}].provider: expected one of {list(PROVIDERS)} or null")
        for key in ("retry_after", "retry_after_ms"):
            if values.get(key) is not None:
                values[key] = str(values[key])
        status = values.get("status")
        if status is not None and not 400 <= status <= 599:
            raise ControlError(f"faults[{i}].status: must be a 4xx or 5xx code")
        fac = values.get("fail_after_chunks")
        if fac is not None and fac < 0:
            raise ControlError(f"faults[{i}].fail_after_chunks: must be >= 0")
        if values.get("delay_s", 0) < 0:
            raise ControlError(f"faults[{i}].delay_s: must be >= 0")
        result.append(Fault(**values))
    return result


@dataclass
class EmulatorState:
    """All mutable state; one instance per app (single process, single event loop)."""

    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    faults: deque[Fault] = field(default_factory=deque)
    records: list[RequestRecord] = field(default_factory=list)
    _next_id: int = 1

    def reset(self) -> None:
        self.config = EmulatorConfig()
        self.faults.clear()
        self.records.clear()

    def pop_fault(self, provider: Provider) -> Fault | None:
        """Remove and return the oldest queued fault that applies to ``provider``."""
        for fault in self.faults:
            if fault.provider is None or fault.provider == provider:
                self.faults.remove(fault)
                return fault
        return None

    def new_record(self, provider: Provider, path: str, body: Any, headers: dict[str, str]) -> RequestRecord:
        record = RequestRecord(
            id=self._next_id,
            provider=provider,
            path=path,
            body=body,
            headers=headers,
            received_at=time.time(),
        )
        self._next_id += 1
        self.records.append(record)
        return record

    def stats(self) -> dict[str, Any]:
        counts = dict.fromkeys(PROVIDERS, 0)
        in_progress = 0
        for record in self.records:
            counts[record.provider] += 1
            if record.outcome == "in_progress":
                in_progress += 1
        return {"requests": counts, "in_progress": in_progress}
