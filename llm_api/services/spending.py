"""A chat call under a reservation: settle it with the usage, release it after an upstream error.

    spend = await ChatSpend.reserve(guard, call, key_id=key_id)  # 429 / 402: nothing goes upstream
    completion = await spend.complete(service.complete(call))  # settled with the completion's usage
    items = spend.stream(service.stream(call))  # settled at the end, or on disconnect

What is billed on each path:
- a completion or a finished stream: the provider's usage (exact);
- an upstream error before any output: nothing (released: providers do not bill a failed call);
- a stream that failed or was cancelled after some output: the input estimate plus the relayed text's
  estimate (`estimated=True`), as the provider bills what it produced;
- a JSON call cancelled because the client left: the input estimate (`estimated=True`): the provider
  may have started generating, and under-billing is the risk to avoid.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from decimal import Decimal

from llm_api.errors import UpstreamError
from llm_api.services.llm import PreparedCall
from llm_api.services.providers.base import Completion, StreamItem, StreamSummary, TextDeltas
from llm_api.spend import KeyLimits, Reservation, SpendGuard, estimate_texts_tokens, estimate_tokens


@dataclass(slots=True)
class ChatSpend:
    guard: SpendGuard
    reservation: Reservation
    input_estimate: int

    @classmethod
    async def reserve(
        cls, guard: SpendGuard, call: PreparedCall, *, key_id: str, limits: KeyLimits | None = None
    ) -> ChatSpend:
        """Reserve the call's worst case (its max_tokens out) against the key's limits."""
        request = call.request
        estimate = estimate_texts_tokens([(m.role, m.content) for m in request.messages])
        reservation = await guard.reserve(
            key_id=key_id,
            limits=limits or guard.default_limits,
            model=request.model,
            input_tokens=estimate,
            max_output_tokens=request.max_tokens,
        )
        return cls(guard, reservation, estimate)

    async def _settle_estimated(self, output_tokens: int) -> None:
        # Shielded: runs to the end even when the request's task is being cancelled.
        settle = self.guard.settle(
            self.reservation, input_tokens=self.input_estimate, output_tokens=output_tokens, estimated=True
        )
        await asyncio.shield(asyncio.ensure_future(settle))

    async def complete(self, completion: Awaitable[Completion]) -> Completion:
        try:
            result = await completion
        except asyncio.CancelledError:
            await self._settle_estimated(0)
            raise
        except BaseException:
            await self.guard.release(self.reservation)
            raise
        await self.guard.settle(
            self.reservation, input_tokens=result.input_tokens, output_tokens=result.output_tokens
        )
        return result

    async def stream(self, items: AsyncGenerator[StreamItem, None]) -> AsyncGenerator[StreamItem, None]:
        relayed: list[str] = []
        settled = False
        try:
            async for item in items:
                if isinstance(item, TextDeltas):
                    relayed.extend(item.texts)
                elif isinstance(item, StreamSummary):
                    await self.guard.settle(
                        self.reservation, input_tokens=item.input_tokens, output_tokens=item.output_tokens
                    )
                    settled = True
                yield item
        except UpstreamError:
            if not relayed:
                settled = True
                await self.guard.release(self.reservation)
            raise
        finally:
            await items.aclose()
            if not settled:
                await self._settle_estimated(estimate_tokens("".join(relayed)))

    @property
    def cost_usd(self) -> Decimal | None:
        """The worst case reserved (None: the model has no price)."""
        return self.reservation.cost_usd
