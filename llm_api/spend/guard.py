"""`SpendGuard`: reserve a request's worst case before it goes upstream, settle or release it after.

One Lua call reserves the worst case (estimated input + max output tokens, and what they cost at the
model's dearest rates) against every token window and the budget of the key; if any would overflow,
nothing is reserved and the request is refused (429 tokens, 402 budget). After the call `settle`
replaces the reservation by the provider's usage; after an error the provider does not bill, `release`
drops it. A reservation nobody settles (the worker died) expires by itself.

Outages (Redis does not answer): budgeted keys fail closed (503 budget_unavailable); token limits follow
RATE_LIMIT_FAIL_CLOSED: 503, or this worker's share of each limit in process (`LocalSpend`).
A budget period whose spend is missing in Redis (a flush, a restart without persistence) is rebuilt
from the ledger (`spend_source`) under a lock before its next budgeted request.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llm_api.chat_model import Usage
from llm_api.errors import (
    BudgetUnavailable,
    ModelPriceUnknown,
    RateLimitBackendUnavailable,
)
from llm_api.security.redis_link import RedisDown, RedisLink
from llm_api.spend.headers import answer_reservation
from llm_api.spend.local import LocalSpend
from llm_api.spend.periods import PeriodWindow, period_window
from llm_api.spend.prices import NANO, PriceTable, cost, dearest_worst_case, to_nano_usd
from llm_api.spend.redis_spend import RedisSpend, spend_keys
from llm_api.spend.types import (
    MINUTE_S,
    KeyLimits,
    Reservation,
    ReserveResult,
    ReserveStatus,
    SpendSource,
    TokenWindow,
    UsageSnapshot,
    parse_token_limit,
)
from llm_api.utils.context import request_context

if TYPE_CHECKING:
    from llm_api.config import Settings
    from llm_api.security.key_charge import KeyCharge
    from llm_api.security.ratelimit import RateLimiter

log = logging.getLogger("llm_api.spend")


class SpendGuard:
    """The reservation engine of one worker (built in the lifespan; Redis shared with the RateLimiter)."""

    def __init__(
        self,
        *,
        prices: PriceTable,
        default_limits: KeyLimits,
        client: Any | None = None,
        link: RedisLink | None = None,
        key_prefix: str = "llm_api",
        reservation_ttl_s: float = 900.0,
        workers: int = 1,
        fail_closed: bool = False,
        spend_source: SpendSource | None = None,
        rebuild_timeout_s: float = 5.0,
        limiter: RateLimiter | None = None,
        default_max_output_tokens: int = 32_000,
    ) -> None:
        self.prices = prices
        self.default_limits = default_limits
        self._prefix = key_prefix
        self._ttl_s = reservation_ttl_s
        self._workers = max(1, workers)
        self._fail_closed = fail_closed
        self._spend_source = spend_source
        self._rebuild_timeout_s = rebuild_timeout_s
        self._limiter = limiter
        self._default_max_output = default_max_output_tokens
        self._local = LocalSpend()
        self._redis: RedisSpend | None = None
        if client is not None:
            assert link is not None, "a shared Redis needs its link"
            self._redis = RedisSpend(client, link, key_prefix=key_prefix)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, limiter: RateLimiter, spend_source: SpendSource | None = None
    ) -> SpendGuard:
        """Build the guard on the limiter's Redis client (no connection is opened here)."""
        return cls(
            prices=PriceTable(settings.model_prices),
            default_limits=KeyLimits(
                tokens=parse_token_limit(settings.token_limit),
                budget_usd=settings.budget_usd,
                budget_period=settings.budget_period,
            ),
            client=limiter.redis_client,
            link=limiter.link,
            key_prefix=settings.rate_limit_key_prefix,
            reservation_ttl_s=settings.spend_reservation_ttl_s,
            workers=settings.web_concurrency,
            fail_closed=settings.rate_limit_fail_closed,
            spend_source=spend_source,
            limiter=limiter,
            default_max_output_tokens=settings.default_max_output_tokens,
        )

    def set_spend_source(self, spend_source: SpendSource | None) -> None:
        """Where lost period spend is rebuilt from (the store's LedgerRepository.spend_since)."""
        self._spend_source = spend_source

    def max_output_tokens(self, requested: int | None) -> int:
        """The output a request may produce: its max_tokens, or DEFAULT_MAX_OUTPUT_TOKENS without one."""
        return requested if requested is not None else self._default_max_output

    # ------------------------------------------------------------------ keys

    def _keys(self, key_id: str, period: str | None) -> list[str]:
        return spend_keys(self._prefix, key_id, period)

    @staticmethod
    def _tracked(limits: KeyLimits) -> tuple[int, ...]:
        # A limited key's tokens are also counted per minute (the admin API's minute_tokens).
        return tuple(sorted({MINUTE_S, *(w.window_s for w in limits.tokens)}))

    # ------------------------------------------------------------------ reserve

    async def reserve(
        self,
        *,
        key_id: str,
        limits: KeyLimits,
        model: str,
        input_tokens: int,
        max_output_tokens: int,
        charge: KeyCharge | None = None,
        served_by: Sequence[str] = (),
    ) -> Reservation:
        """Hold the request's worst case, or raise RateLimited (429), BudgetExceeded (402),
        ModelPriceUnknown (400) or a 503; the token headers go into the request context. A pending
        rate-limit `charge` of the key is charged first, in the reservation's round trip where it can be.
        `served_by`: the models that may answer a routed `model` (an alias's targets), priced each."""
        try:
            reservation, nano, period = self._worst_case(
                key_id, limits, model, input_tokens, max_output_tokens, served_by
            )
            return await self._hold(reservation, nano, period, charge)
        except Exception:
            if charge is not None:
                await charge.run()  # refused before Redis: the rate limit still answers first
            raise

    def _worst_case(
        self,
        key_id: str,
        limits: KeyLimits,
        model: str,
        input_tokens: int,
        max_output_tokens: int,
        served_by: Sequence[str] = (),
    ) -> tuple[Reservation, int, PeriodWindow | None]:
        """The reservation of the request's worst case, its cost in nano-USD, and its budget period.
        A routed request's worst case is its dearest target's (any target may end up serving it)."""
        routed = tuple(served_by) not in ((), (model,))
        target_prices = {name: self.prices.price_for(name) for name in (served_by if routed else (model,))}
        if limits.budgeted:
            for name, known in target_prices.items():
                if known is None:
                    target = f" (a target of '{model}')" if routed else ""
                    raise ModelPriceUnknown(
                        f"model '{name}'{target} has no known price, and this key has a budget: "
                        "use a priced model (or ask the operator to add it to MODEL_PRICES)"
                    )
        tokens = input_tokens + max_output_tokens
        price, worst = dearest_worst_case(
            target_prices.values(), input_tokens=input_tokens, output_tokens=max_output_tokens
        )
        nano = to_nano_usd(worst) if worst is not None else 0
        period = period_window(limits.budget_period) if limits.budgeted else None
        reservation = Reservation(
            id=secrets.token_hex(16),
            key_id=key_id,
            model=model,
            tokens=tokens,
            cost_usd=worst,
            price=price,
            limits=limits,
            period=period.ident if period else None,
            period_ttl_s=period.ttl_s(datetime.now(UTC)) if period else None,
            shared=self._redis is not None,
            target_prices=target_prices if routed else None,
        )
        return reservation, nano, period

    async def _hold(
        self, reservation: Reservation, nano: int, period: PeriodWindow | None, charge: KeyCharge | None
    ) -> Reservation:
        key_id, limits = reservation.key_id, reservation.limits
        if not limits.tokens and period is None:
            if charge is not None:
                await charge.run()
            return reservation  # nothing to hold: settle only counts
        pipelines = self._redis is not None and self._redis.pipelines
        hit = charge.take_shared() if charge is not None and pipelines else None
        if charge is not None and hit is None:
            await charge.run()
        if self._redis is None:
            await self._seed_local(key_id, period)
            result = self._reserve_locally(reservation, nano, limits.tokens, period)
        else:
            try:
                result = await self._redis.hold(
                    reservation,
                    nano=nano,
                    ttl_s=self._ttl_s,
                    period=period,
                    charge=charge if hit else None,
                    spend_source=self._spend_source,
                    rebuild_timeout_s=self._rebuild_timeout_s,
                )
            except RedisDown:
                if charge is not None:
                    await charge.lost()  # the rate limit's outage policy answers first
                if period is not None:
                    raise BudgetUnavailable(
                        "budgets are temporarily unavailable; try again shortly", headers={"Retry-After": "1"}
                    ) from None
                if self._fail_closed:
                    raise RateLimitBackendUnavailable(
                        "token limits are temporarily unavailable; try again shortly",
                        headers={"Retry-After": "1"},
                    ) from None
                shares = tuple(
                    TokenWindow(math.ceil(w.limit / self._workers), w.window_s) for w in limits.tokens
                )
                reservation = _unshared(reservation)
                result = self._reserve_locally(reservation, nano, shares, None)
            else:
                if result.status is ReserveStatus.RESERVED:
                    # Mirrored in process, so that an outage starts from this worker's own usage.
                    self._local.reserve(
                        key_id,
                        reservation_id=reservation.id,
                        tokens=reservation.tokens,
                        nano=nano,
                        ttl_s=self._ttl_s,
                        windows=(),
                        budget_nano=None,
                        period="none",
                        record_only=True,
                    )
        answer_reservation(result, tokens=reservation.tokens, limits=limits)
        return reservation

    def _reserve_locally(
        self,
        reservation: Reservation,
        nano: int,
        windows: tuple[TokenWindow, ...],
        period: PeriodWindow | None,
    ) -> ReserveResult:
        limits = reservation.limits
        return self._local.reserve(
            reservation.key_id,
            reservation_id=reservation.id,
            tokens=reservation.tokens,
            nano=nano,
            ttl_s=self._ttl_s,
            windows=tuple((w.window_s, w.limit) for w in windows),
            budget_nano=(
                to_nano_usd(limits.budget_usd, round_up=False)
                if period is not None and limits.budget_usd is not None
                else None
            ),
            period=period.ident if period else "none",
        )

    async def start_at_zero(self, key_id: str, limits: KeyLimits) -> None:
        """A key created a moment ago has spent nothing: its period's spend is known (zero) without the
        ledger, so its first budgeted requests need no rebuild. (A burst of a new key's first requests on a
        busy worker waited for that rebuild's database read past its bound: 503 budget_unavailable.)
        Best effort: if Redis does not answer, the first request rebuilds as after a flush."""
        if self._redis is None or not limits.budgeted:
            return
        period = period_window(limits.budget_period)
        budget_key = self._keys(key_id, period.ident)[3]
        ttl = period.ttl_s(datetime.now(UTC)) or -1
        try:
            await self._redis.mark_spend(budget_key, nano=0, ttl_s=ttl)
        except Exception as exc:  # the rebuild on first use still covers it
            log.info(
                "new key's budget not marked in Redis; its first request rebuilds it",
                extra={"key_id": key_id, "exception_type": type(exc).__name__},
            )

    async def _seed_local(self, key_id: str, period: PeriodWindow | None) -> None:
        if period is None or self._local.has_spend(key_id, period.ident):
            return
        spent = Decimal(0)
        if self._spend_source is not None:
            spent = await self._spend_source(key_id, period.start)
        self._local.seed_spend(key_id, period.ident, to_nano_usd(spent))

    # ------------------------------------------------------------------ settle, release

    async def settle(
        self,
        reservation: Reservation,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        estimated: bool = False,
        served_model: str | None = None,
    ) -> Decimal | None:
        """Replace the reservation by the actual usage; its cost in USD (None: the model has no price).
        A routed request is billed at the price of the target that served (`served_model`)."""
        usage = Usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        price = reservation.price
        targets = reservation.target_prices
        if targets is not None and served_model is not None and served_model in targets:
            price = targets[served_model]
        spent = cost(usage, price) if price is not None else None
        context = request_context()
        if context is not None:
            context.cost_usd = spent
            context.usage_estimated = estimated
            context.price_version = self.prices.version if price is not None else None
            context.cache_read_tokens = cache_read_tokens
            context.cache_write_tokens = cache_write_tokens
        tokens = usage.prompt_tokens + output_tokens
        nano = to_nano_usd(spent) if spent is not None else 0
        limits = reservation.limits
        windows = self._tracked(limits)
        self._local.settle(
            reservation.key_id,
            reservation_id=reservation.id,
            tokens=tokens,
            nano=nano,
            windows=windows,
            period=None if reservation.shared else reservation.period,
        )
        if (
            self._redis is None
            or not reservation.shared
            or (not limits.tokens and reservation.period is None)
        ):
            # Nothing in Redis limits this key: no round trip (its usage is in the ledger).
            return spent
        budget_ttl = (reservation.period_ttl_s or -1) if reservation.period is not None else 0
        keys = self._keys(reservation.key_id, reservation.period)
        args = [reservation.id, tokens, nano, budget_ttl, *windows]
        await self._redis.settle(keys, args, reservation.key_id)
        return spent

    async def release(self, reservation: Reservation) -> None:
        """Drop the reservation (the provider does not bill the failed call)."""
        self._local.release(reservation.key_id, reservation.id)
        limits = reservation.limits
        if (
            self._redis is None
            or not reservation.shared
            or (not limits.tokens and reservation.period is None)
        ):
            return
        await self._redis.release(reservation.key_id, reservation.period, reservation.id)

    # ------------------------------------------------------------------ admin

    async def usage_snapshot(self, key_id: str, limits: KeyLimits | None = None) -> UsageSnapshot:
        """Live usage: this period's settled spend, the last minute's tokens, and requests (rpm window)."""
        limits = limits or self.default_limits
        period = period_window(limits.budget_period)
        requests = await self._limiter.requests_in_window(key_id) if self._limiter else None
        if self._redis is None:
            used, held, spent_nano, _ = self._local.snapshot(key_id, MINUTE_S, period.ident)
        else:
            used, held, spent_nano = await self._redis.snapshot(key_id, period.ident)
        return UsageSnapshot(
            period_spend_usd=Decimal(spent_nano) * NANO,
            minute_tokens=used + held,
            minute_requests=requests,
        )

    async def aclose(self) -> None:
        """Nothing to close: the Redis client belongs to the RateLimiter."""


def _unshared(reservation: Reservation) -> Reservation:
    return replace(reservation, shared=False)
