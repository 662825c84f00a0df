"""Stream bodies shared by the vendor-format endpoints: relayed frames as they are, or neutral events
through the format's stream encoder."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import Protocol, TypeVar

from llm_api.chat_model import EventBatch, MessageStart, StreamEvent
from llm_api.services.llm import PreparedCall
from llm_api.services.providers.base import RawFrames, StreamItem
from llm_api.services.routed import RoutedCall


class Streamer(Protocol):
    """What streams a call: the ChatService, or a MeteredChat (the same under a reservation)."""

    def stream_answer(self, call: PreparedCall | RoutedCall) -> AsyncGenerator[StreamItem, None]: ...


class StreamEncoder(Protocol):
    def encode(self, events: Sequence[StreamEvent]) -> bytes: ...


E = TypeVar("E", bound=StreamEncoder)


def model_of(call: PreparedCall | RoutedCall) -> str:
    """The model a stream's opening names when the upstream's does not."""
    return call.request.model if isinstance(call, PreparedCall) else call.requested


async def stream_body(
    service: Streamer,
    call: PreparedCall | RoutedCall,
    encoder_for: Callable[[MessageStart], E],
    *,
    finish: Callable[[E], bytes] | None = None,
) -> AsyncGenerator[bytes, None]:
    """A stream in the client's format, whichever target served it: a same-vendor stream's frames,
    untouched, as they arrive; a translated stream's neutral events encoded by the client's format, the
    encoder built from the stream's MessageStart (its id and model); `finish` writes the format's ending
    (translated streams only: a relayed one carries its own)."""
    encoder: E | None = None
    async with aclosing(service.stream_answer(call)) as items:
        async for item in items:
            if isinstance(item, RawFrames):
                if item.data:
                    yield item.data
                continue
            if not isinstance(item, EventBatch) or not item.events:
                continue
            if encoder is None:
                first = item.events[0]
                start = (
                    first if isinstance(first, MessageStart) else MessageStart(id="", model=model_of(call))
                )
                encoder = encoder_for(start)
            data = encoder.encode(item.events)
            if data:
                yield data
    if encoder is not None and finish is not None:
        data = finish(encoder)
        if data:
            yield data
