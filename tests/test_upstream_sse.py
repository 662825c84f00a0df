"""Unit tests for the upstream SSE reader: events split anywhere, any line ending, comments ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llm_api.errors import UpstreamUnavailable
from llm_api.services.providers._sse import (
    EndOfStream,
    UpstreamEvent,
    item_batches,
    iter_event_batches,
    relay_item_batches,
    sse_frame,
)

STREAM = (
    b": keep-alive comment\n\n"
    b'event: message_start\ndata: {"a":1}\n\n'
    b"event: ping\ndata: {}\n\n"
    b"data: first line\ndata:second line\n\n"
    b"id: 7\nretry: 100\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    UpstreamEvent("message_start", b'{"a":1}'),
    UpstreamEvent("ping", b"{}"),
    UpstreamEvent("", b"first line\nsecond line"),
    UpstreamEvent("", b"[DONE]"),
]


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def collect(data: bytes, size: int) -> list[UpstreamEvent]:
    return [event async for batch in iter_event_batches(chunked(data, size)) for event in batch]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
async def test_events_survive_any_split_and_line_ending(size: int, ending: bytes) -> None:
    assert await collect(STREAM.replace(b"\n", ending), size) == EXPECTED


async def test_a_last_event_without_its_blank_line_still_counts() -> None:
    assert await collect(b"data: one\n\ndata: two", 4) == [
        UpstreamEvent("", b"one"),
        UpstreamEvent("", b"two"),
    ]


async def test_an_empty_body_has_no_events() -> None:
    assert await collect(b"", 10) == []
    assert await collect(b"\n\n\n", 1) == []


async def test_events_completed_by_one_chunk_come_as_one_batch() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: a\n\ndata: b\n\ndata: c"  # two complete events and half of a third
        yield b"\n\n"

    batches = [batch async for batch in iter_event_batches(chunks())]
    assert batches == [[UpstreamEvent("", b"a"), UpstreamEvent("", b"b")], [UpstreamEvent("", b"c")]]


def texts_or_error(event: UpstreamEvent) -> list[str]:
    if event.data == b"boom":
        raise UpstreamUnavailable("stream failed", provider="test")
    return [event.data.decode()]


async def test_first_delta_alone_then_one_batch_per_chunk_and_errors_after_what_preceded() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: a\n\ndata: b\n\ndata: c\n\n"
        yield b"data: d\n\ndata: boom\n\ndata: never\n\n"

    seen: list[list[str]] = []
    with pytest.raises(UpstreamUnavailable):
        async for items in item_batches(chunks(), texts_or_error):
            seen.append(items)
    assert seen == [["a"], ["b", "c"], ["d"]]


async def test_the_end_marker_ends_the_deltas_even_if_the_server_keeps_the_body_open() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: a\n\ndata: [DONE]\n\ndata: after\n\n"
        await asyncio.Event().wait()  # the server never finishes the body
        yield b""

    def texts_until_done(event: UpstreamEvent) -> list[str]:
        if event.data == b"[DONE]":
            raise EndOfStream
        return [event.data.decode()]

    async with asyncio.timeout(5):  # without the end marker this would wait forever
        seen = [items async for items in item_batches(chunks(), texts_until_done)]
    assert seen == [["a"]]


class RecordedStream:
    """An upstream body in memory that records whether the relay handed its connection back."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = iter(chunks)
        self.read = 0
        self.closed = False

    def __aiter__(self) -> RecordedStream:
        return self

    async def __anext__(self) -> bytes:
        chunk = next(self._chunks, None)
        if chunk is None:
            raise StopAsyncIteration
        self.read += 1
        return chunk

    async def aclose(self) -> None:
        self.closed = True


def texts(event: UpstreamEvent) -> list[str]:
    return [event.data.decode()]


async def test_the_relay_releases_the_upstream_when_it_is_read_to_the_end() -> None:
    stream = RecordedStream(b"data: a\n\n", b"data: b\n\n")
    assert [items async for items in relay_item_batches(stream, texts)] == [["a"], ["b"]]
    assert stream.closed


async def test_a_relay_closed_early_releases_the_upstream_without_reading_on() -> None:
    """A client that hangs up closes the relay: the upstream connection goes, nothing more is read."""
    stream = RecordedStream(b"data: a\n\n", b"data: b\n\n", b"data: c\n\n")
    relay = relay_item_batches(stream, texts)
    assert await anext(relay) == ["a"]
    await relay.aclose()
    assert stream.closed and stream.read == 1


def test_a_relayed_event_keeps_its_name_and_payload() -> None:
    assert sse_frame(UpstreamEvent("message_start", b'{"a":1}')) == b'event: message_start\ndata: {"a":1}\n\n'
    assert sse_frame(UpstreamEvent("", b"one\ntwo")) == b"data: one\ndata: two\n\n"
