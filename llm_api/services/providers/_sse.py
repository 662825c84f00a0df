"""Server-sent events read straight off an upstream body (about half the CPU of the SDKs' decoders)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import TypeVar

from llm_api.errors import UpstreamError
from llm_api.services.providers.transport import UpstreamStream

_LINE_ENDS = (b"\r\n", b"\r")
# How long the rest of a body may take after the provider's end marker before the connection is dropped.
DRAIN_TIMEOUT_S = 0.05
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    """One event: its `event:` name ("" when absent) and its `data:` lines joined by newlines."""

    name: str
    data: bytes


def _parse_block(block: bytes) -> UpstreamEvent | None:
    name = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
        # comments (":") and other fields (id:, retry:) carry nothing the adapters use
    if not data and not name:
        return None
    return UpstreamEvent(name, b"\n".join(data))


def _normalise(buffer: bytes) -> bytes:
    for ending in _LINE_ENDS:
        buffer = buffer.replace(ending, b"\n")
    return buffer


async def iter_event_batches(chunks: AsyncIterator[bytes]) -> AsyncGenerator[list[UpstreamEvent], None]:
    """The events completed by each chunk of a byte stream split anywhere (a final event without its
    blank line still counts); chunks that complete none yield nothing."""
    buffer = b""
    ended = False
    iterator = aiter(chunks)
    while not ended:
        try:
            buffer += await anext(iterator)
        except StopAsyncIteration:
            ended = True
            buffer += b"\n\n"
        if b"\r" in buffer:
            if buffer.endswith(b"\r") and not ended:
                continue  # maybe half of a \r\n: wait for the next chunk
            buffer = _normalise(buffer)
        start = 0
        batch: list[UpstreamEvent] = []
        while (end := buffer.find(b"\n\n", start)) != -1:
            event = _parse_block(buffer[start:end])
            start = end + 2
            if event is not None:
                batch.append(event)
        buffer = buffer[start:]
        if batch:
            yield batch


async def _drain(batches: AsyncIterator[list[UpstreamEvent]]) -> None:
    """Read what follows the end marker (normally just the body's end) so the upstream connection goes
    back to the pool instead of being closed; a server that keeps it open is given up on quickly."""
    with suppress(TimeoutError, UpstreamError, OSError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in batches:
                pass


class EndOfStream(Exception):
    """Raised by an `items_of` callback at the provider's end marker (OpenAI's [DONE], Anthropic's
    message_stop): the relay stops reading there, even if the server keeps the connection open."""


async def item_batches(
    chunks: AsyncIterator[bytes], items_of: Callable[[UpstreamEvent], Iterable[T]]
) -> AsyncGenerator[list[T], None]:
    """The items `items_of` finds in each event, one list per upstream chunk.

    The stream's first item goes out on its own at once (time to first token); after it, items that
    arrived together go together. An `UpstreamError` from `items_of` (an error event) is raised after the
    items that preceded it have been yielded; `EndOfStream` ends the items (what follows is drained
    briefly, not relayed). Items that `items_of` returns together with its `EndOfStream` are not lost:
    it may return them first and raise on the next call, or they are the end marker's own.
    """
    relayed = False
    async with aclosing(iter_event_batches(chunks)) as batches:
        async for batch in batches:
            items: list[T] = []
            failure: UpstreamError | None = None
            ended = False
            for event in batch:
                try:
                    items.extend(items_of(event))
                except UpstreamError as exc:
                    failure = exc
                    break
                except EndOfStream:
                    ended = True
                    break
                if items and not relayed:
                    yield items
                    items = []
                    relayed = True
            if items:
                yield items
            if failure is not None:
                raise failure
            if ended:
                await _drain(batches)
                return


async def relay_item_batches(
    stream: UpstreamStream, items_of: Callable[[UpstreamEvent], Iterable[T]]
) -> AsyncGenerator[list[T], None]:
    """`item_batches` over a streamed upstream answer, whose connection is released however it ends: read
    to the end (back to the pool), or closed early (an error, or the client hung up: the upstream stops)."""
    try:
        async with aclosing(item_batches(stream, items_of)) as batches:
            async for items in batches:
                yield items
    finally:
        await stream.aclose()


def sse_frame(event: UpstreamEvent) -> bytes:
    """The event as SSE bytes again (its payload untouched): `event:` line if named, one `data:` per line."""
    data = b"".join(b"data: " + line + b"\n" for line in event.data.split(b"\n"))
    if event.name:
        return b"event: " + event.name.encode() + b"\n" + data + b"\n"
    return data + b"\n"
