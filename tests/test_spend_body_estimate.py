"""The raw-body token estimate used for relayed requests: never below the neutral chat's estimate of the
same request, and an image counts as one image, not as its base64 characters."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api.codecs import anthropic_messages, openai_chat
from llm_api.spend import estimate_chat_tokens
from llm_api.spend.estimate import IMAGE_TOKENS, estimate_body_tokens
from tests.support import Emulator

texts = st.text(min_size=1, max_size=400)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=6), st.none() | texts)
def test_openai_body_estimate_covers_the_chat_estimate(turns: list[str], system: str | None) -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    body = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 10}
    chat = openai_chat.decode_request(openai_chat.validate_request(orjson.dumps(body)))
    assert estimate_body_tokens(body) >= estimate_chat_tokens(chat)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts, min_size=1, max_size=6), st.none() | texts)
def test_anthropic_body_estimate_covers_the_chat_estimate(turns: list[str], system: str | None) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    if len(messages) % 2 == 0:
        messages.append({"role": "user", "content": "go on"})
    body: dict[str, Any] = {"model": "claude-sonnet-4-6", "messages": messages, "max_tokens": 10}
    if system:
        body["system"] = system
    chat = anthropic_messages.decode_request(anthropic_messages.validate_request(orjson.dumps(body)))
    assert estimate_body_tokens(body) >= estimate_chat_tokens(chat)


def test_an_image_counts_once_not_by_its_characters() -> None:
    image = {"type": "base64", "media_type": "image/png", "data": Emulator.TINY_PNG_B64 * 2000}
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "image", "source": image}]}],
    }
    assert IMAGE_TOKENS <= estimate_body_tokens(body) < IMAGE_TOKENS + 50
    url = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + Emulator.TINY_PNG_B64 * 2000}}
    openai_body = {"model": "gpt-4o", "messages": [{"role": "user", "content": [url]}]}
    assert IMAGE_TOKENS <= estimate_body_tokens(openai_body) < IMAGE_TOKENS + 50
