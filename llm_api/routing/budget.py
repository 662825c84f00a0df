"""One budget of upstream attempts per request, shared by every retry and every fallback.

The executor draws one attempt before each target it calls; the retry policy draws one before each retry,
through the `RetryBudget` the executor hands to the target (`Target.budget`). The retry policy needs one
change to honour it: build its tenacity `stop` with `budget_stop(self.attempts, budget)` (see the README,
"Router and cache", for the exact diff to services/retry.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from tenacity import RetryCallState


class AttemptBudget:
    """`max_attempts` upstream calls for the whole request (router.max_attempts_total)."""

    def __init__(self, max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.max_attempts - self.used

    def spend(self) -> bool:
        """Take one attempt; False (nothing taken) once all are spent."""
        if self.used >= self.max_attempts:
            return False
        self.used += 1
        return True


class RetryBudget(Protocol):
    """What a retry policy needs from the router for one target."""

    async def failed(self, error: BaseException) -> None:
        """An attempt failed with a transient `error` (counted once per error object)."""
        ...

    def spend(self) -> bool:
        """Take one more attempt for a retry; False: stop retrying (budget spent, or the deployment
        started cooling down), the error goes back to the router, which may fall back."""
        ...


def budget_stop(attempts: int, budget: RetryBudget | None) -> Callable[[RetryCallState], Awaitable[bool]]:
    """A tenacity `stop` (AsyncRetrying awaits it): the policy's own attempt limit, then the router's say.

    Tenacity calls `stop` only after a transient failure (its `retry` predicate first), so every failure
    it sees is reported to the budget before the next attempt is drawn."""

    async def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= attempts:
            return True
        if budget is None:
            return False
        error = state.outcome.exception() if state.outcome is not None else None
        if error is not None:
            await budget.failed(error)
        return not budget.spend()

    return stop
