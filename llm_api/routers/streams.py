"""Stream bodies shared by the vendor-format endpoints: relayed frames as they are, or neutral events
through the format's stream encoder."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import Protocol, TypeVar

from llm_api.chat_model import EventBatch, MessageStart, StreamEvent
from llm_api.services.llm import PreparedCall
from llm_api.services.providers.base import RawFrames, StreamItem


class Streamer(Protocol):
    """What streams a prepared call: the ChatService, or a MeteredChat (the same under a reservation)."""

    def stream(self, call: PreparedCall) -> AsyncGenerator[StreamItem, None]: ...


class StreamEncoder(Protocol):
    def encode(self, events: Sequence[StreamEvent]) -> bytes: ...


E = TypeVar("E", bound=StreamEncoder)


async def relayed_frames(service: Streamer, call: PreparedCall) -> AsyncGenerator[bytes, None]:
    """A same-vendor stream: the upstream's frames, untouched, as they arrive."""
    async with aclosing(service.stream(call)) as items:
        async for item in items:
            if isinstance(item, RawFrames) and item.data:
                yield item.data


async def encoded_events(
    service: Streamer,
    call: PreparedCall,
    encoder_for: Callable[[MessageStart], E],
    *,
    finish: Callable[[E], bytes] | None = None,
) -> AsyncGenerator[bytes, None]:
    """A translated stream: neutral events encoded by the client's format, the encoder built from the
    stream's MessageStart (its id and model); `finish` writes the format's ending."""
    encoder: E | None = None
    async with aclosing(service.stream(call)) as items:
        async for item in items:
            if not isinstance(item, EventBatch) or not item.events:
                continue
            if encoder is None:
                first = item.events[0]
                start = (
                    first
                    if isinstance(first, MessageStart)
                    else MessageStart(id="", model=call.request.model)
                )
                encoder = encoder_for(start)
            data = encoder.encode(item.events)
            if data:
                yield data
    if encoder is not None and finish is not None:
        data = finish(encoder)
        if data:
            yield data
