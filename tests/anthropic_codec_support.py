"""Helpers for the Anthropic codec's tests: golden files, neutral objects as JSON, SSE parsing, and the
anthropic SDK reading bytes the gateway would send (through httpx's MockTransport: no socket)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import anthropic
import httpx2

GOLDEN = Path(__file__).parent / "golden" / "anthropic_messages"
# UPDATE_GOLDEN=1 rewrites the expected files from the current output (then review the diff).
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def plain(value: Any) -> Any:
    """A neutral object as JSON-able data: dataclasses as `{"_type": name, field: value}` without the
    fields left at their default, so golden files show what a codec set."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"_type": type(value).__name__}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            default = (
                field.default
                if field.default is not dataclasses.MISSING
                else field.default_factory()
                if field.default_factory is not dataclasses.MISSING
                else dataclasses.MISSING
            )
            if default is dataclasses.MISSING or item != default:
                out[field.name] = plain(item)
        return out
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


def load(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def check_golden(name: str, actual: Any) -> None:
    """`actual` must equal the golden file `name` (written when missing or with UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    data = plain(actual)
    if UPDATE or not path.exists():
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    assert data == json.loads(path.read_text()), f"{name} differs (UPDATE_GOLDEN=1 rewrites it)"


def sse_frames(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Named SSE events as (event name, parsed data); every frame must have both."""
    frames = []
    for block in data.decode().split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ") and len(lines) == 2, block
        frames.append((lines[0][7:], json.loads(lines[1][6:])))
    return frames


def sdk_stream(chunks: Iterable[bytes]) -> tuple[list[str], Any]:
    """What `messages.stream()` of the anthropic SDK makes of a response body sent in `chunks`:
    the `text_stream` pieces and `get_final_message()`."""
    body = list(chunks)

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=iter(body))

    client = anthropic.Anthropic(
        api_key="test",
        base_url="http://gateway.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        max_retries=0,
    )
    with (
        client,
        client.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        texts = list(stream.text_stream)
        return texts, stream.get_final_message()
