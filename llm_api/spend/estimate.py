"""A token estimator for reservations: cheap, offline, and meant to over-count rather than under-count.

No tokenizer ships its vocabulary inside a PyPI wheel for Claude, and tiktoken downloads its encodings at
run time (the gateway never fetches anything at run time), so the estimate is arithmetic:

    text tokens = max(ceil(ascii_chars / 3.2), ceil(words * 1.5)) + non_ascii_chars

- English prose runs ~4 characters and ~0.75 words per token on OpenAI's encodings (OpenAI's own rule of
  thumb) and ~3.5 characters per token on Claude's (Anthropic's). 3.2 characters per token and 1.5 tokens
  per word over-count both, by 10-25 % on prose; code and JSON (short words, many symbols) are caught by
  the character term, lists of short words by the word term.
- Every non-ASCII character counts as a whole token: CJK text is roughly one token per character (more for
  rare ones), accented Latin text rarely more than that.
- Each message adds 4 tokens (role and separators), each request 3; an image counts 1,600 tokens
  (Anthropic's ~1.15 megapixel ceiling / 750), a tool its name, description and JSON schema as text.

The estimate only decides what is *reserved*; after the call the reservation is replaced by the provider's
own count, so over-counting costs nothing but headroom near a limit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import orjson

from llm_api.chat_model import Chat, Image, Message, Text, Thinking, ToolCall, ToolResult

CHARS_PER_TOKEN = 3.2
TOKENS_PER_WORD = 1.5
MESSAGE_OVERHEAD = 4
REQUEST_OVERHEAD = 3
IMAGE_TOKENS = 1600


def estimate_tokens(text: str) -> int:
    """Tokens in `text`, never fewer than a real tokenizer would count for English (see module docs)."""
    if not text:
        return 0
    # Encoding drops the non-ASCII characters in C: a loop over them cost ~30 µs per KiB, some 4 ms of
    # blocked event loop for a coding agent's 160 KiB request.
    non_ascii = 0 if text.isascii() else len(text) - len(text.encode("ascii", "ignore"))
    ascii_chars = len(text) - non_ascii
    words = len(text.split())
    return max(math.ceil(ascii_chars / CHARS_PER_TOKEN), math.ceil(words * TOKENS_PER_WORD)) + non_ascii


def _plain(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else str(value)


def _json_tokens(value: object) -> int:
    return estimate_tokens(orjson.dumps(value, default=_plain).decode())


def _block_tokens(block: object) -> int:
    if isinstance(block, Text):
        return estimate_tokens(block.text)
    if isinstance(block, Image):
        return IMAGE_TOKENS
    if isinstance(block, ToolCall):
        return estimate_tokens(block.name) + _json_tokens(dict(block.arguments)) + MESSAGE_OVERHEAD
    if isinstance(block, ToolResult):
        return sum(_block_tokens(part) for part in block.content) + MESSAGE_OVERHEAD
    if isinstance(block, Thinking):
        return estimate_tokens(block.text) + (estimate_tokens(block.redacted) if block.redacted else 0)
    return 0


def estimate_message_tokens(message: Message) -> int:
    return MESSAGE_OVERHEAD + sum(_block_tokens(block) for block in message.content)


def estimate_chat_tokens(chat: Chat) -> int:
    """Input tokens of a neutral chat: system, messages, tools and the response schema."""
    total = REQUEST_OVERHEAD + sum(estimate_message_tokens(m) for m in chat.messages)
    if chat.system:
        total += MESSAGE_OVERHEAD + sum(estimate_tokens(part.text) for part in chat.system)
    for tool in chat.tools:
        total += (
            MESSAGE_OVERHEAD
            + estimate_tokens(tool.name)
            + estimate_tokens(tool.description or "")
            + _json_tokens(dict(tool.parameters))
        )
    if chat.response_format is not None and chat.response_format.schema is not None:
        total += _json_tokens(dict(chat.response_format.schema))
    return total


def estimate_texts_tokens(texts: list[tuple[str, str]]) -> int:
    """Input tokens of plain (role, text) messages, as `/v1/chat` has them."""
    return REQUEST_OVERHEAD + sum(MESSAGE_OVERHEAD + estimate_tokens(text) for _, text in texts)


# Where a vendor body carries an image or document as data (base64 or a data: URL) or as a link: counted
# as one image, not as its characters.
_MEDIA_KEYS = frozenset({"data", "url", "image_url", "file_data"})
_NOT_INPUT = frozenset({"model", "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p"})


# A vendor body repeats the same keys in every message and block ("type", "role", "content"...): their
# counts are memoised (keys only: no message text outlives its request here).
_key_tokens = functools.lru_cache(maxsize=1024)(estimate_tokens)


def _value_tokens(value: object, key: str | None) -> int:
    if isinstance(value, str):
        if key in _MEDIA_KEYS and (value.startswith(("data:", "http://", "https://")) or len(value) > 1000):
            return IMAGE_TOKENS
        return estimate_tokens(value)
    if isinstance(value, Mapping):
        total = 1
        for k, v in value.items():
            name = str(k)
            total += _key_tokens(name) + _value_tokens(v, name)
        return total
    if isinstance(value, list | tuple):
        return sum(_value_tokens(item, key) + 1 for item in value)
    return 1 if value is not None else 0


def estimate_body_tokens(body: Mapping[str, object]) -> int:
    """Input tokens of a request body in a vendor's own format (OpenAI or Anthropic), without decoding it:
    every string (and every key, as in tools' schemas) counted as text, each media part as one image.
    Over-counts the JSON structure a little more than `estimate_chat_tokens`; used for relayed requests."""
    total = REQUEST_OVERHEAD
    for key, value in body.items():
        if key not in _NOT_INPUT:
            total += _value_tokens(value, key)
    return total
