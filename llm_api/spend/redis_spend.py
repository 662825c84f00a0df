"""The spend counters in Redis: one hash tag per client key, the Lua scripts, every call through the link.

`SpendGuard` decides what to reserve and what an outage means; this module only talks to Redis. A call
that does not finish in time while Redis answers (RedisBusy) is a 503 for that request; RedisDown is the
caller's to handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from llm_api.errors import BudgetUnavailable, RateLimitBackendUnavailable, RateLimited
from llm_api.security.ratelimit import SharedHit
from llm_api.security.redis_commands import (
    evalsha,
    on_one_connection,
    run_script,
    send_commands,
    settled_reply,
)
from llm_api.security.redis_link import RedisBusy, RedisDown, RedisLink
from llm_api.spend import scripts
from llm_api.spend.periods import PeriodWindow
from llm_api.spend.prices import to_nano_usd
from llm_api.spend.rebuild import rebuild_period
from llm_api.spend.types import MINUTE_S, Reservation, ReserveResult, ReserveStatus, SpendSource

if TYPE_CHECKING:
    from llm_api.security.key_charge import KeyCharge

log = logging.getLogger("llm_api.spend")

REBUILD_POLL_S = 0.05


def spend_keys(prefix: str, key_id: str, period: str | None) -> list[str]:
    """Token windows, reservations, held totals and the period's budget of `key_id`: one Cluster slot."""
    tag = f"{{{prefix}:spend:{key_id}}}"
    return [f"{tag}:tok", f"{tag}:res", f"{tag}:held", f"{tag}:b:{period or 'none'}"]


class RedisSpend:
    """The scripts on the limiter's Redis client, called within the link's deadlines."""

    def __init__(self, client: Any, link: RedisLink, *, key_prefix: str) -> None:
        self.client = client
        self._link = link
        self._prefix = key_prefix
        # Plain and Sentinel clients carry both scripts on one connection; a Cluster would split them by slot.
        self.pipelines = on_one_connection(client)
        self._reserve = client.register_script(scripts.RESERVE)
        self._settle = client.register_script(scripts.SETTLE)
        self._release = client.register_script(scripts.RELEASE)
        self.rebuild_script = client.register_script(scripts.REBUILD)
        self._snapshot = client.register_script(scripts.SNAPSHOT)

    def keys(self, key_id: str, period: str | None) -> list[str]:
        return spend_keys(self._prefix, key_id, period)

    async def bounded(self, operation: Any) -> Any:
        """`operation` through the link; RedisBusy becomes a 503 (RedisDown propagates)."""
        try:
            return await self._link.call(operation)
        except RedisBusy:
            raise RateLimitBackendUnavailable(
                "the limit check did not finish in time; try again shortly", headers={"Retry-After": "1"}
            ) from None

    async def hold(
        self,
        reservation: Reservation,
        *,
        nano: int,
        ttl_s: float,
        period: PeriodWindow | None,
        charge: KeyCharge | None,
        spend_source: SpendSource | None,
        rebuild_timeout_s: float,
    ) -> ReserveResult:
        """Reserve in Redis (with `charge`, its hit taken, in the same round trip); a budget period whose
        spend Redis lost is first rebuilt from `spend_source`, under a lock, by one worker."""
        limits = reservation.limits
        keys = self.keys(reservation.key_id, reservation.period)
        budget_nano = to_nano_usd(limits.budget_usd, round_up=False) if limits.budget_usd is not None else -1
        windows = [value for w in limits.tokens for value in (w.window_s, w.limit)]
        args = [reservation.id, reservation.tokens, nano, int(ttl_s * 1000), budget_nano, *windows]
        deadline = time.monotonic() + rebuild_timeout_s
        rebuilt = False
        while True:
            if charge is not None:
                result = await self._reserve_and_charge(reservation, keys, args, charge)
                charge = None
            else:
                result = await self.reserve(keys, args)
            if result.status is not ReserveStatus.REBUILD:
                return result
            assert period is not None
            if time.monotonic() > deadline:
                raise BudgetUnavailable(
                    "the budget's spend is being rebuilt; try again shortly", headers={"Retry-After": "1"}
                )
            if not rebuilt:
                rebuilt = await rebuild_period(
                    client=self.client,
                    call=self.bounded,
                    script=self.rebuild_script,
                    spend_source=spend_source,
                    key_id=reservation.key_id,
                    period=period,
                    budget_key=keys[3],
                    timeout_s=rebuild_timeout_s,
                )
            if not rebuilt:
                await asyncio.sleep(REBUILD_POLL_S)  # another worker holds the rebuild lock

    async def _reserve_and_charge(
        self, reservation: Reservation, keys: list[str], args: list[Any], charge: KeyCharge
    ) -> ReserveResult:
        hit = charge.sent
        assert hit is not None
        hit_reply, result = await self.reserve_with_hit(keys, args, hit)
        try:
            await charge.finish(hit_reply)
        except RateLimited:
            if result.status is ReserveStatus.RESERVED:  # refused by the rate limit: hold nothing
                await self.release(reservation.key_id, reservation.period, reservation.id)
            raise
        return result

    async def reserve(self, keys: list[str], args: list[Any]) -> ReserveResult:
        return ReserveResult.from_reply(
            await self.bounded(lambda: run_script(self.client, self._reserve, keys, args))
        )

    async def reserve_with_hit(
        self, keys: list[str], args: list[Any], hit: SharedHit
    ) -> tuple[Any, ReserveResult]:
        """The rate-limit hit's reply, and the reservation, from one round trip: both EVALSHA written
        together on one pooled connection (not a transaction: each script is atomic, and their keys live in
        different hash slots)."""

        async def both() -> tuple[Any, Any]:
            hit_reply, reply = await send_commands(
                self.client, evalsha(hit.script, hit.keys, hit.args), evalsha(self._reserve, keys, args)
            )
            return (
                await settled_reply(hit_reply, hit.script, hit.keys, hit.args),
                await settled_reply(reply, self._reserve, keys, args),
            )

        hit_reply, reply = await self.bounded(both)
        return hit_reply, ReserveResult.from_reply(reply)

    async def settle(self, keys: list[str], args: list[Any], key_id: str) -> None:
        try:
            await self._link.call(lambda: run_script(self.client, self._settle, keys, args))
        except (RedisDown, RedisBusy) as exc:
            # The spend happened; the ledger has it (and a rebuilt period reads it back from there).
            log.warning(
                "usage could not be counted in Redis",
                extra={"key_id": key_id, "exception_type": type(exc).__name__},
            )

    async def release(self, key_id: str, period: str | None, reservation_id: str) -> None:
        keys = self.keys(key_id, period)
        with contextlib.suppress(RedisDown, RedisBusy):  # else it expires by itself
            await self._link.call(lambda: run_script(self.client, self._release, keys[1:3], [reservation_id]))

    async def snapshot(self, key_id: str, period: str) -> tuple[int, int, int]:
        """(settled tokens this minute, tokens held, nano-USD spent in the period)."""
        keys = self.keys(key_id, period)
        reply = await self.bounded(
            lambda: self._snapshot(keys=[keys[0], keys[2], keys[3]], args=[MINUTE_S, 1])
        )
        used, held, spent_nano, _ = (int(v or 0) for v in reply)
        return used, held, spent_nano

    async def mark_spend(self, budget_key: str, *, nano: int, ttl_s: int) -> None:
        """Set a period's spend as known (the rebuild script)."""
        await self.bounded(lambda: self.rebuild_script(keys=[budget_key], args=[nano, ttl_s]))
