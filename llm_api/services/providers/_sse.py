"""Server-sent events read straight off an upstream body (about half the CPU of the SDKs' decoders)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

_LINE_ENDS = (b"\r\n", b"\r")


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


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[UpstreamEvent]:
    """Events from a byte stream split anywhere; a final event without its blank line still counts."""
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
        while (end := buffer.find(b"\n\n", start)) != -1:
            event = _parse_block(buffer[start:end])
            start = end + 2
            if event is not None:
                yield event
        buffer = buffer[start:]
