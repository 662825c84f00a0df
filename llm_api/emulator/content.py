"""Provider-neutral helpers: what text to answer, how to chunk it, token counts, ids."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

import orjson

from llm_api.emulator.state import EmulatorConfig

_ALPHABET = string.ascii_letters + string.digits

# Anthropic stop_reason -> OpenAI finish_reason (and the reverse below).
_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def anthropic_stop_reason(reason: str) -> str:
    """``reason`` in Anthropic's vocabulary (the config may use either provider's)."""
    return _TO_ANTHROPIC.get(reason, reason)


def openai_finish_reason(reason: str) -> str:
    """``reason`` in OpenAI's vocabulary (the config may use either provider's)."""
    return _TO_OPENAI.get(reason, reason)


def split_text(text: str, chunks: int | None) -> list[str]:
    """Split ``text`` into stream deltas whose concatenation is exactly ``text``.

    By default one delta per whitespace-separated word (each delta carries the whitespace
    before its word). With ``chunks`` fewer than the words, words are grouped evenly; with
    more, filler words `` tok0 tok1 ...`` are appended to the text.
    """
    words: list[str] = re.findall(r"\s*\S+", text)
    if not words:
        words = [text] if chunks is None else []
    else:
        words[-1] += text[len("".join(words)) :]  # keep trailing whitespace
    if chunks is None:
        chunks = len(words)
    if len(words) < chunks:
        words += [f"{' ' if (words or i) else ''}tok{i}" for i in range(chunks - len(words))]
    base, extra = divmod(len(words), chunks)
    groups: list[str] = []
    start = 0
    for i in range(chunks):
        size = base + (1 if i < extra else 0)
        groups.append("".join(words[start : start + size]))
        start += size
    return groups


def plan_blocks(config: EmulatorConfig) -> list[list[str]]:
    """The answer as content blocks, each a list of stream deltas.

    Without ``blocks`` there is one block: ``text`` split into ``chunks`` deltas. With
    ``blocks`` each string is its own block, one delta per word (``chunks`` is ignored).
    """
    if config.blocks:
        return [split_text(block, None) for block in config.blocks]
    return [split_text(config.text, config.chunks)]


def count_deltas(blocks: list[list[str]]) -> int:
    return sum(len(block) for block in blocks)


IMAGE_TOKENS = 85  # per image part, whatever its size (OpenAI's price of a low-detail image)


def _words_in_content(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    total = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text.split())
                elif part.get("type") in ("image", "image_url"):
                    total += IMAGE_TOKENS
                elif "content" in part:  # e.g. Anthropic tool_result blocks
                    total += _words_in_content(part["content"])
                elif isinstance(part.get("input"), dict):  # Anthropic tool_use blocks
                    total += _json_words(part["input"])
            elif isinstance(part, str):
                total += len(part.split())
    return total


def _json_words(value: Any) -> int:
    return len(orjson.dumps(value).replace(b",", b" ").replace(b":", b" ").split())


def count_input_tokens(messages: Any, system: Any = None, tools: Any = None) -> int:
    """Deterministic "token" count: whitespace-separated words over system + messages, min 1.

    An image counts ``IMAGE_TOKENS``; tool definitions and tool-call inputs count the words of
    their JSON (commas and colons as spaces).
    """
    total = _words_in_content(system)
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                total += _words_in_content(message.get("content"))
                for call in message.get("tool_calls") or []:
                    total += _json_words(call)
    if tools:
        total += _json_words(tools)
    return max(total, 1)


def split_chars(text: str, parts: int) -> list[str]:
    """``text`` in up to ``parts`` non-empty pieces of about equal length (JSON, say)."""
    size = max(-(-len(text) // max(parts, 1)), 1)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
