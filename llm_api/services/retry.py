"""The retry policy (tenacity): backoff with jitter, transient errors only, Retry-After honoured."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential_jitter,
)

from llm_api.errors import GatewayError, UpstreamError
from llm_api.routing.budget import RetryBudget, budget_stop

T = TypeVar("T")
log = logging.getLogger("llm_api.retry")


class RetryObserver(Protocol):
    def __call__(self, *, attempt: int, error: BaseException, wait_s: float) -> None: ...


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, GatewayError) and exc.retryable


class RetryPolicy:
    """How many attempts and how long to wait between them."""

    def __init__(self, *, attempts: int, wait_min_s: float, wait_max_s: float) -> None:
        self.attempts = attempts
        self.wait_min_s = wait_min_s
        self.wait_max_s = wait_max_s
        self._backoff = wait_exponential_jitter(
            multiplier=wait_min_s, max=wait_max_s, jitter=wait_min_s, min=wait_min_s
        )

    def wait_for(self, state: RetryCallState) -> float:
        """Backoff with jitter; an upstream's Retry-After wins when longer, capped by the maximum wait."""
        backoff = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, UpstreamError) and error.retry_after_s is not None:
            return min(self.wait_max_s, max(backoff, error.retry_after_s))
        return backoff

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        on_attempt: Callable[[int], None] | None = None,
        on_retry: RetryObserver | None = None,
        budget: RetryBudget | None = None,
    ) -> T:
        """Run `operation` until it succeeds, fails for good, or the attempts are spent (with a router's
        `budget`, also when the request's attempt budget is spent or the deployment starts cooling down)."""
        # Fast path: most calls succeed at once, and tenacity's bookkeeping costs more than the call's
        # own overhead in this gateway; it takes over only after a transient failure.
        if on_attempt is not None:
            on_attempt(1)
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc) or self.attempts < 2:
                raise
            first_failure = exc
        replayed = False

        async def replay_then_operate() -> T:
            """Attempt 1 replays the failure above (no upstream call), so waits and numbering are
            tenacity's own."""
            nonlocal replayed
            if not replayed:
                replayed = True
                raise first_failure
            return await operation()

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait_s = state.next_action.sleep if state.next_action else 0.0
            if error is None:
                return
            log.warning(
                "upstream attempt failed, retrying",
                extra={
                    "attempt": state.attempt_number,
                    "error_type": getattr(error, "error_type", type(error).__name__),
                    "wait_s": round(wait_s, 3),
                },
            )
            if on_retry is not None:
                on_retry(attempt=state.attempt_number, error=error, wait_s=wait_s)

        retrying = AsyncRetrying(
            stop=budget_stop(self.attempts, budget),  # type: ignore[arg-type]  # AsyncRetrying awaits it
            wait=self.wait_for,
            retry=retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if on_attempt is not None and number > 1:
                    on_attempt(number)
                return await replay_then_operate()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
