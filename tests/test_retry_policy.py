"""Unit tests for the pure retry logic: what is transient, how long to wait."""

from __future__ import annotations

import pytest
from tenacity import Future, RetryCallState

from llm_api.errors import (
    UpstreamAuthFailed,
    UpstreamConnectionFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from llm_api.services.providers._common import parse_retry_after
from llm_api.services.retry import RetryPolicy, is_transient


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (408, None, UpstreamTimeout),
        (429, None, UpstreamRateLimited),
        (500, None, UpstreamUnavailable),
        (502, None, UpstreamUnavailable),
        (503, None, UpstreamUnavailable),
        (504, None, UpstreamTimeout),
        (529, None, UpstreamUnavailable),
        (200, "overloaded_error", UpstreamUnavailable),
        (200, "api_error", UpstreamUnavailable),
        (400, None, UpstreamRejected),
        (404, None, UpstreamRejected),
        (413, None, UpstreamRejected),
        (422, None, UpstreamRejected),
        (401, None, UpstreamAuthFailed),
        (403, None, UpstreamAuthFailed),
    ],
)
def test_classification(status: int, kind: str | None, cls: type[UpstreamError]) -> None:
    error = upstream_error_for_status(status, provider="anthropic", error_kind=kind)
    assert type(error) is cls
    assert is_transient(error) is (cls in (UpstreamTimeout, UpstreamRateLimited, UpstreamUnavailable))


def test_connection_failures_are_transient() -> None:
    assert is_transient(UpstreamConnectionFailed("x", provider="openai"))
    assert not is_transient(ValueError("not ours"))


def _state(attempt: int, error: BaseException) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    outcome = Future(attempt)
    outcome.set_exception(error)
    state.outcome = outcome
    return state


def test_backoff_grows_within_bounds() -> None:
    policy = RetryPolicy(attempts=4, wait_min_s=1, wait_max_s=16)
    error = UpstreamUnavailable("x", provider="anthropic")
    waits = [policy.wait_for(_state(n, error)) for n in (1, 2, 3, 4, 5, 6)]
    assert all(1 <= w <= 16 for w in waits)
    assert waits[2] > waits[0]
    assert waits[-1] == 16


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(attempts=4, wait_min_s=1, wait_max_s=16)
    asked = UpstreamRateLimited("x", provider="openai", retry_after_s=7)
    assert policy.wait_for(_state(1, asked)) == 7
    too_long = UpstreamRateLimited("x", provider="openai", retry_after_s=600)
    assert policy.wait_for(_state(1, too_long)) == 16


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5", "retry-after-ms": "100"}, 0.1),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    import email.utils
    import time

    value = parse_retry_after({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert value is not None and 25 < value <= 31


async def test_call_counts_attempts_and_stops_on_permanent_errors() -> None:
    policy = RetryPolicy(attempts=4, wait_min_s=0, wait_max_s=0)
    outcomes: list[BaseException | str] = [
        UpstreamUnavailable("x", provider="openai"),
        UpstreamTimeout("x", provider="openai"),
        "ok",
    ]
    calls: list[int] = []
    retries: list[int] = []

    async def operation() -> str:
        outcome = outcomes[len(calls)]
        calls.append(len(calls) + 1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def on_retry(*, attempt: int, error: BaseException, wait_s: float) -> None:
        retries.append(attempt)

    attempts: list[int] = []
    assert await policy.call(operation, on_attempt=attempts.append, on_retry=on_retry) == "ok"
    assert calls == [1, 2, 3] and attempts == [1, 2, 3] and retries == [1, 2]

    rejected = UpstreamRejected("bad", provider="openai", upstream_status=400)

    async def permanent() -> str:
        calls.append(0)
        raise rejected

    calls.clear()
    with pytest.raises(UpstreamRejected):
        await policy.call(permanent)
    assert calls == [0]

    async def always_down() -> str:
        calls.append(0)
        raise UpstreamUnavailable("x", provider="openai")

    calls.clear()
    with pytest.raises(UpstreamUnavailable):
        await policy.call(always_down)
    assert len(calls) == 4
