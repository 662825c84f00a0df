"""The reservation engine in process: without REDIS_URL, and as the fallback while Redis does not answer.

The same arithmetic as the Lua scripts (`scripts.py`), on one worker's memory. During an outage the guard
gives it each token limit divided by WEB_CONCURRENCY (rounded up), and it has seen every reservation this
worker made while Redis was up too, so an outage starts from this worker's own usage, not from zero.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from llm_api.spend.types import ReserveResult, ReserveStatus


@dataclass(slots=True)
class _Window:
    idx: int = -1
    cur: int = 0
    prev: int = 0

    def roll(self, length_ms: int, now_ms: int) -> tuple[int, int]:
        """Weighted tokens of the last window, and ms until this window ends."""
        idx = now_ms // length_ms
        if idx != self.idx:
            self.prev = self.cur if idx == self.idx + 1 else 0
            self.cur = 0
            self.idx = idx
        elapsed = now_ms - idx * length_ms
        return math.ceil(self.prev * (length_ms - elapsed) / length_ms) + self.cur, length_ms - elapsed


@dataclass(slots=True)
class _KeyState:
    windows: dict[int, _Window] = field(default_factory=dict)
    held: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # id -> tokens, nano, expiry
    spent: dict[str, int] = field(default_factory=dict)  # budget period id -> nano


class LocalSpend:
    """Per-worker token windows, reservations and period spend (one event loop: no locks needed)."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}

    def _state(self, key_id: str) -> _KeyState:
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyState()
        return state

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def reserve(
        self,
        key_id: str,
        *,
        reservation_id: str,
        tokens: int,
        nano: int,
        ttl_s: float,
        windows: tuple[tuple[int, int], ...],
        budget_nano: int | None,
        period: str,
        record_only: bool = False,
    ) -> ReserveResult:
        """Reserve unless a window or the budget would overflow; `record_only` always reserves."""
        state = self._state(key_id)
        now = self._now_ms()
        for rid in [rid for rid, (_, _, expiry) in state.held.items() if expiry <= now]:
            del state.held[rid]
        held_tokens = sum(t for t, _, _ in state.held.values())
        held_nano = sum(n for _, n, _ in state.held.values())
        status = ReserveStatus.RESERVED
        limit = remaining = -1
        reset_ms = 0
        for length_s, cap in windows:
            window = state.windows.setdefault(length_s, _Window())
            used, left_ms = window.roll(length_s * 1000, now)
            room = cap - used - held_tokens
            if limit < 0 or room - tokens < remaining:
                limit, remaining, reset_ms = cap, room - tokens, left_ms
            if tokens > cap:
                status = ReserveStatus.TOO_LARGE
            elif tokens > room and status is ReserveStatus.RESERVED:
                status = ReserveStatus.OVER_TOKENS
        committed = state.spent.get(period, 0) + held_nano
        if not record_only:
            if budget_nano is not None and committed + nano > budget_nano:
                return ReserveResult(ReserveStatus.OVER_BUDGET, limit, remaining, reset_ms, committed)
            if status is not ReserveStatus.RESERVED:
                return ReserveResult(status, limit, remaining + tokens, reset_ms, committed)
        state.held[reservation_id] = (tokens, nano, now + ttl_s * 1000)
        return ReserveResult(ReserveStatus.RESERVED, limit, remaining, reset_ms, committed + nano)

    def settle(
        self,
        key_id: str,
        *,
        reservation_id: str,
        tokens: int,
        nano: int,
        windows: tuple[int, ...],
        period: str | None,
    ) -> None:
        state = self._state(key_id)
        state.held.pop(reservation_id, None)
        now = self._now_ms()
        for length_s in windows:
            window = state.windows.setdefault(length_s, _Window())
            window.roll(length_s * 1000, now)
            window.cur += tokens
        if period is not None:
            state.spent[period] = state.spent.get(period, 0) + nano

    def release(self, key_id: str, reservation_id: str) -> None:
        self._state(key_id).held.pop(reservation_id, None)

    def seed_spend(self, key_id: str, period: str, nano: int) -> None:
        """Start a period's spend from what is known (the ledger), unless more was counted here."""
        state = self._state(key_id)
        state.spent[period] = max(state.spent.get(period, 0), nano)

    def has_spend(self, key_id: str, period: str) -> bool:
        return period in self._state(key_id).spent

    def snapshot(self, key_id: str, window_s: int, period: str) -> tuple[int, int, int, int]:
        state = self._state(key_id)
        used, _ = state.windows.setdefault(window_s, _Window()).roll(window_s * 1000, self._now_ms())
        held_tokens = sum(t for t, _, _ in state.held.values())
        held_nano = sum(n for _, n, _ in state.held.values())
        return used, held_tokens, state.spent.get(period, 0), held_nano
