"""`RedisLink.call`'s deadlines: a slow call on a Redis that answers goes on (then RedisBusy past the hard
bound); a slow call on a Redis that does not answer is an outage; the caller's own cancellation stays the
caller's. The operation runs in the caller's task, so these check that the link's cancellations and the
caller's never get mixed up."""

from __future__ import annotations

import asyncio

import pytest

from llm_api.security.redis_link import RedisBusy, RedisDown, RedisLink
from tests.support import async_wait_until

TIMEOUT_S = 0.05  # the link asks "does Redis answer?" after 2 x this


class Probe:
    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        return self.answers

    async def aclose(self) -> None:
        pass


class SlowOperation:
    """An operation that takes `seconds`, and says whether it finished or was cancelled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = False
        self.finished = False
        self.cancelled = False

    async def __call__(self) -> str:
        self.started = True
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.finished = True
        return "reply"


def link_on(probe: Probe, *, hard_deadline: float = 5.0) -> RedisLink:
    return RedisLink(probe=probe, timeout_s=TIMEOUT_S, hard_deadline=hard_deadline)


async def test_a_slow_call_on_a_redis_that_answers_goes_on_to_its_reply() -> None:
    probe = Probe(answers=True)
    link = link_on(probe)
    operation = SlowOperation(8 * TIMEOUT_S)  # past the deadline, within the hard bound
    assert await link.call(operation) == "reply"
    assert operation.finished and probe.pings == 1
    assert not link.degraded


async def test_a_call_past_the_hard_bound_is_busy_not_an_outage() -> None:
    probe = Probe(answers=True)
    link = link_on(probe, hard_deadline=0.1)
    operation = SlowOperation(30.0)
    with pytest.raises(RedisBusy):
        await link.call(operation)
    assert operation.cancelled and not link.degraded
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # nothing left pending


async def test_a_slow_call_on_a_redis_that_does_not_answer_is_an_outage() -> None:
    link = link_on(Probe(answers=False))
    operation = SlowOperation(30.0)
    with pytest.raises(RedisDown):
        await link.call(operation)
    assert operation.cancelled and link.degraded
    with pytest.raises(RedisDown):  # during the outage, at once
        await link.call(SlowOperation(0))
    await link.aclose()


async def test_the_callers_cancellation_propagates_and_cancels_the_call() -> None:
    probe = Probe(answers=True)
    link = link_on(probe)
    operation = SlowOperation(30.0)
    caller = asyncio.ensure_future(link.call(operation))
    await async_wait_until(lambda: operation.started, timeout=5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert operation.cancelled and not link.degraded


async def test_a_fast_call_leaves_no_timer_behind() -> None:
    probe = Probe(answers=False)
    link = link_on(probe)
    for _ in range(20):
        assert await link.call(SlowOperation(0)) == "reply"
    await asyncio.sleep(4 * TIMEOUT_S)  # past every deadline those calls had: no ping, no outage follows
    assert probe.pings == 0 and not link.degraded
