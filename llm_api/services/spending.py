"""A chat call under a reservation: settled with the usage, released after an upstream error.

Every chat endpoint (`/v1/chat`, `/v1/chat/completions`, `/v1/messages`) goes through here, on every path
(JSON or SSE, relayed or translated):

    metered = await MeteredChat.reserve(service, call, guard=guard, client=client)  # 403, 429, 402, 400
    result = await metered.complete(call)  # or relay(call), or stream(call): ChatService's own shapes

`reserve` checks the key's model allow-list and holds the call's worst case (the estimated input plus its
max tokens, or the model's output maximum) before anything goes upstream. What is billed afterwards:
- an answer or a finished stream: the provider's usage (exact), cache tokens included;
- an upstream error before any output: nothing (released: providers do not bill a failed call);
- a stream that failed or was cancelled after some output: the input estimate plus the estimate of what
  was relayed (`estimated=True`), as the provider bills what it produced;
- a JSON call cancelled because the client left: the input estimate (`estimated=True`): the provider
  may have started generating, and under-billing is the risk to avoid.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

import orjson

from llm_api.chat_model import Chat, ChatResult, EventBatch, TextDelta, ThinkingDelta, ToolArgumentsDelta
from llm_api.errors import UpstreamError
from llm_api.security.key_charge import KeyCharge
from llm_api.security.managed_keys import ClientKey, authorize_model, spend_limits
from llm_api.services.llm import ChatService, PreparedCall
from llm_api.services.providers.base import Outcome, RawFrames, RelayedResponse, StreamItem
from llm_api.services.routed import RoutedCall
from llm_api.spend import Reservation, SpendGuard, estimate_chat_tokens, estimate_tokens
from llm_api.spend.estimate import estimate_body_tokens
from llm_api.utils.context import RequestContext, request_context

Answer = TypeVar("Answer", ChatResult, RelayedResponse, ChatResult | RelayedResponse)

# The strings of a relayed stream's events that are output (OpenAI's chunk deltas, Anthropic's deltas).
_OUTPUT_KEYS = frozenset({"content", "text", "thinking", "partial_json", "arguments", "refusal"})


def worst_case_output(guard: SpendGuard, call: PreparedCall | RoutedCall) -> int:
    """The call's max tokens, else the model's output maximum, else the gateway's default."""
    if isinstance(call, RoutedCall):
        return guard.max_output_tokens(_routed_max_tokens(call))
    requested = call.request.max_tokens
    if requested is None:
        requested = call.capabilities.max_output_tokens
    return guard.max_output_tokens(requested)


def _routed_max_tokens(call: RoutedCall) -> int | None:
    if call.chat is not None:
        return call.chat.max_tokens
    body = call.wire.body if call.wire is not None else {}
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int):
            return value
    return None


def input_estimate(call: PreparedCall | RoutedCall, chat: Chat | None = None) -> int:
    """The input tokens reserved for: from the neutral chat when there is one, else from the body sent."""
    if chat is None and isinstance(call, RoutedCall):
        chat = call.chat
    if chat is not None:
        return estimate_chat_tokens(chat)
    if isinstance(call, RoutedCall):
        return estimate_body_tokens(call.wire.body if call.wire is not None else {})
    return estimate_body_tokens(call.request.body)


def model_of(call: PreparedCall | RoutedCall) -> str:
    """The model (or, routed, the alias) the key's allow-list and prices apply to."""
    return call.request.model if isinstance(call, PreparedCall) else call.requested


def _batch_tokens(batch: EventBatch) -> int:
    total = 0
    for event in batch.events:
        if isinstance(event, TextDelta | ThinkingDelta):
            total += estimate_tokens(event.text)
        elif isinstance(event, ToolArgumentsDelta):
            total += estimate_tokens(event.partial_json)
    return total


def _strings(value: object, key: str | None = None) -> int:
    if isinstance(value, str):
        return estimate_tokens(value) if key in _OUTPUT_KEYS else 0
    if isinstance(value, dict):
        return sum(_strings(v, str(k)) for k, v in value.items())
    if isinstance(value, list):
        return sum(_strings(item, key) for item in value)
    return 0


def _frames_tokens(data: bytes) -> int:
    """Output tokens in relayed SSE frames: the text their `data:` JSON carries (parsed only when a stream
    is cut, so the relay itself never pays for it)."""
    total = 0
    for line in data.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            total += _strings(orjson.loads(line[5:]))
        except orjson.JSONDecodeError:
            continue  # [DONE], or a frame split across reads: a few tokens at most
    return total


# What a stream holds for its estimate before it counts it: a long answer's memory stays bounded, and a
# usual one (a few KiB) is never parsed unless it is cut.
FOLD_BATCHES = 256
FOLD_FRAME_BYTES = 64 * 1024


@dataclass(slots=True)
class ChatSpend:
    """One call's reservation, and what the stream relayed so far (for an estimate if it is cut)."""

    guard: SpendGuard
    reservation: Reservation
    input_estimate: int
    _batches: list[EventBatch] = field(default_factory=list)
    _frames: list[bytes] = field(default_factory=list)
    _frame_bytes: int = 0
    _counted: int = 0  # tokens of what was relayed and already counted (folded)

    def _hold_batch(self, batch: EventBatch) -> None:
        self._batches.append(batch)
        if len(self._batches) >= FOLD_BATCHES:
            self._counted += sum(_batch_tokens(b) for b in self._batches)
            self._batches.clear()

    def _hold_frames(self, data: bytes) -> None:
        self._frames.append(data)
        self._frame_bytes += len(data)
        if self._frame_bytes >= FOLD_FRAME_BYTES:
            self._counted += sum(_frames_tokens(f) for f in self._frames)
            self._frames.clear()
            self._frame_bytes = 0

    def _relayed_tokens(self) -> int:
        held = sum(_batch_tokens(b) for b in self._batches) + sum(_frames_tokens(f) for f in self._frames)
        return self._counted + held

    @classmethod
    def opened(cls, guard: SpendGuard, reservation: Reservation, input_estimate: int) -> ChatSpend:
        """The spend of a reservation just made. Unless something settles or releases it first, the
        request's end releases it: only a stream torn down before its first step ends so, and nothing
        went upstream then (a stream that ran settles itself), so the hold is given back at once instead
        of expiring after SPEND_RESERVATION_TTL_S."""
        spend = cls(guard, reservation, input_estimate)
        context = request_context()
        if context is not None:
            context.unsettled = spend.release
        return spend

    def _closing(self) -> RequestContext | None:
        """This spend is being settled or released: the request's end has nothing left to close."""
        context = request_context()
        if context is not None and context.unsettled == self.release:
            context.unsettled = None
        return context

    async def release(self) -> None:
        """Drop the reservation (nothing billed: an error the provider does not charge, or no call)."""
        self._closing()
        await asyncio.shield(asyncio.ensure_future(self.guard.release(self.reservation)))

    async def settle_estimated(self, output_tokens: int) -> None:
        context = self._closing()
        if context is not None and context.cache_hit:
            await self._settle_cache_hit(context)
            return
        if context is not None:
            context.input_tokens = self.input_estimate
            context.output_tokens = output_tokens
        settle = self.guard.settle(
            self.reservation,
            input_tokens=self.input_estimate,
            output_tokens=output_tokens,
            estimated=True,
            served_model=context.target_model if context is not None else None,
        )
        # Shielded: runs to the end even when the request's task is being cancelled.
        await asyncio.shield(asyncio.ensure_future(settle))

    async def settle(self, outcome: Outcome | ChatResult | RelayedResponse) -> None:
        usage = outcome.usage
        context = self._closing()
        if context is not None and context.cache_hit:
            await self._settle_cache_hit(context)
            return
        if context is not None and outcome.model:
            context.model_served = outcome.model
        await self.guard.settle(
            self.reservation,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            served_model=context.target_model if context is not None else None,
        )

    async def _settle_cache_hit(self, context: RequestContext) -> None:
        """An answer from the response cache went nowhere upstream: nothing is billed, no token is
        counted, and the hold is given back (its ledger row: no tokens, 0 USD)."""
        context.cost_usd = Decimal(0)
        context.price_version = self.guard.prices.version
        await self.release()  # shielded, as every release

    async def answer(self, pending: Awaitable[Answer]) -> Answer:
        try:
            result = await pending
        except asyncio.CancelledError:
            await self.settle_estimated(0)
            raise
        except BaseException:
            await self.release()
            raise
        await self.settle(result)
        return result

    async def stream(self, items: AsyncGenerator[StreamItem, None]) -> AsyncGenerator[StreamItem, None]:
        settled = False
        try:
            async for item in items:
                if isinstance(item, EventBatch):
                    self._hold_batch(item)
                elif isinstance(item, RawFrames):
                    self._hold_frames(item.data)
                elif isinstance(item, Outcome):
                    await self.settle(item)
                    settled = True
                yield item
        except UpstreamError:
            if not settled and self._relayed_tokens() == 0:
                settled = True
                await self.release()
            raise
        finally:
            await items.aclose()
            if not settled:
                await self.settle_estimated(self._relayed_tokens())


class MeteredChat:
    """ChatService's `complete`, `relay` and `stream` for one prepared call, under its reservation."""

    def __init__(self, service: ChatService, spend: ChatSpend) -> None:
        self._service = service
        self.spend = spend

    @classmethod
    async def reserve(
        cls,
        service: ChatService,
        call: PreparedCall | RoutedCall,
        *,
        guard: SpendGuard,
        client: ClientKey,
        chat: Chat | None = None,
        charge: KeyCharge | None = None,
    ) -> MeteredChat:
        """403 if the key may not use the model; else hold the call's worst case against the key's limits
        (429 tokens, 402 budget, 400 unpriced model for a budgeted key): nothing has gone upstream yet.
        A pending rate-limit `charge` goes with the reservation (`SpendGuard.reserve`)."""
        model = model_of(call)
        authorize_model(client, model)
        estimate = input_estimate(call, chat)
        reservation = await guard.reserve(
            key_id=client.id,
            limits=spend_limits(client, guard.default_limits),
            model=model,
            input_tokens=estimate,
            max_output_tokens=worst_case_output(guard, call),
            charge=charge,
            served_by=service.served_by(call),
        )
        return cls(service, ChatSpend.opened(guard, reservation, estimate))

    async def complete(self, call: PreparedCall) -> ChatResult:
        return await self.spend.answer(self._service.complete(call))

    async def relay(self, call: PreparedCall) -> RelayedResponse:
        return await self.spend.answer(self._service.relay(call))

    def stream(self, call: PreparedCall) -> AsyncGenerator[StreamItem, None]:
        return self.spend.stream(self._service.stream(call))

    async def answer(self, call: PreparedCall | RoutedCall) -> ChatResult | RelayedResponse:
        """`ChatService.answer` (any call, routed or not) under the reservation."""
        return await self.spend.answer(self._service.answer(call))

    def stream_answer(self, call: PreparedCall | RoutedCall) -> AsyncGenerator[StreamItem, None]:
        """`ChatService.stream_answer` under the reservation."""
        return self.spend.stream(self._service.stream_answer(call))
