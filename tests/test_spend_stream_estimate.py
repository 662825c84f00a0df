"""A long stream cut by its client is billed by the estimate of everything it relayed, while the stream
holds a bounded part of it in memory (ChatSpend folds what it holds into a running count)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson

from llm_api.chat_model import EventBatch, TextDelta
from llm_api.services.providers.base import RawFrames, StreamItem
from llm_api.services.spending import FOLD_BATCHES, FOLD_FRAME_BYTES, ChatSpend
from llm_api.spend import PriceTable, estimate_tokens
from llm_api.spend.guard import SpendGuard
from llm_api.spend.types import KeyLimits, TokenWindow
from llm_api.utils.context import RequestContext

WORDS = "a few more words of the answer "


async def _reserved() -> ChatSpend:
    guard = SpendGuard(
        prices=PriceTable('{"m": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}'),
        default_limits=KeyLimits(),
    )
    limits = KeyLimits(tokens=(TokenWindow(10**9, 60),), budget_usd=None)
    reservation = await guard.reserve(
        key_id="k", limits=limits, model="m", input_tokens=10, max_output_tokens=10**6
    )
    return ChatSpend(guard, reservation, input_estimate=10)


async def _cut_after(spend: ChatSpend, items: list[StreamItem], relayed: int) -> int:
    """Relay `relayed` items, then let the client go; the most items the spend held at once."""

    async def upstream() -> AsyncGenerator[StreamItem, None]:
        for item in items:
            yield item

    stream = spend.stream(upstream())
    most = 0
    for _ in range(relayed):
        await anext(stream)
        most = max(most, len(spend._batches) + len(spend._frames))
    await stream.aclose()
    return most


async def test_a_long_translated_stream_is_billed_in_full_from_a_bounded_hold(
    context: RequestContext,
) -> None:
    spend = await _reserved()
    batches: list[StreamItem] = [EventBatch((TextDelta(0, WORDS),)) for _ in range(3 * FOLD_BATCHES)]
    most = await _cut_after(spend, batches, relayed=2 * FOLD_BATCHES + 17)
    assert context.output_tokens == (2 * FOLD_BATCHES + 17) * estimate_tokens(WORDS)
    assert context.usage_estimated is True and context.cost_usd is not None
    assert most <= FOLD_BATCHES


async def test_a_long_relayed_stream_is_billed_in_full_from_a_bounded_hold(context: RequestContext) -> None:
    spend = await _reserved()
    frame = (
        b"event: content_block_delta\ndata: "
        + orjson.dumps(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WORDS}}
        )
        + b"\n\n"
    )
    reads: list[StreamItem] = [RawFrames(frame * 8) for _ in range(3 * FOLD_FRAME_BYTES // len(frame * 8))]
    relayed = 2 * FOLD_FRAME_BYTES // len(frame * 8) + 5
    most = await _cut_after(spend, reads, relayed=relayed)
    assert context.output_tokens == relayed * 8 * estimate_tokens(WORDS)
    assert most * len(frame * 8) <= FOLD_FRAME_BYTES + len(frame * 8)
