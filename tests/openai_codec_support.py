"""Helpers of the OpenAI codec's tests: neutral objects as JSON, golden files, the SDK's stream reader."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

GOLDEN = Path(__file__).parent / "golden" / "openai_chat"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def neutral(value: Any) -> Any:
    """A neutral-model object as plain JSON: `{"_": class name, non-default fields...}`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"_": type(value).__name__}
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            default = field.default
            if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            if default is not dataclasses.MISSING and item == default:
                continue
            out[field.name] = neutral(item)
        return out
    if isinstance(value, Mapping):
        return {key: neutral(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [neutral(item) for item in value]
    return value


def golden(name: str, actual: Any) -> None:
    """Compare `actual` with tests/golden/openai_chat/<name>.json (UPDATE_GOLDEN=1 rewrites it)."""
    path = GOLDEN / f"{name}.json"
    if UPDATE or not path.exists():
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        assert not UPDATE or path.exists()
        if not UPDATE:
            raise AssertionError(f"{path} did not exist: written, check it and run again")
    assert actual == json.loads(path.read_text()), f"differs from {path} (UPDATE_GOLDEN=1 rewrites it)"


def load(name: str) -> Any:
    return json.loads((GOLDEN / f"{name}.json").read_text())


_CLIENT = openai.OpenAI(api_key="test", base_url="http://127.0.0.1:9/v1", max_retries=0)
_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def sdk_chunks(sse: bytes) -> list[ChatCompletionChunk]:
    """The chunks the openai SDK reads from these SSE bytes (its own decoder and error handling)."""
    response = httpx2.Response(
        200, content=sse, headers={"content-type": "text/event-stream"}, request=_REQUEST
    )
    return list(openai.Stream(cast_to=ChatCompletionChunk, response=response, client=_CLIENT))


def sdk_accumulate(sse: bytes) -> ChatCompletion:
    """What the SDK's own accumulator (behind `chat.completions.stream()`) makes of a stream.

    Its snapshot: `get_final_completion()` raises on a `length` or `content_filter` finish, by design.
    """
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in sdk_chunks(sse):
        state.handle_chunk(chunk)
    final = state.current_completion_snapshot
    if final.choices[0].finish_reason not in ("length", "content_filter"):
        state.get_final_completion()  # the parse the helper does at the end must succeed too
    return final


def frames(sse: bytes) -> list[Any]:
    """The `data:` payloads of SSE bytes, JSON-decoded ("[DONE]" stays a string)."""
    out: list[Any] = []
    for frame in sse.decode().split("\n\n"):
        if not frame:
            continue
        assert frame.startswith("data: ") and "\n" not in frame, frame
        payload = frame[len("data: ") :]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
