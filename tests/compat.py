"""Helpers for the tests of the vendor-format endpoints: the official SDKs pointed at the gateway."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import openai

from tests.support import CLIENT_KEY, Emulator, Gateway

# One model per vendor: with the OpenAI format, gpt-4o is relayed and claude-opus-4-5 translated; with
# the Anthropic format, the other way round.
OPENAI_MODEL = "gpt-4o"
CLAUDE_MODEL = "claude-haiku-4-5"  # the anthropic SDK warns on deprecated models (claude-opus-4-5)
MODELS = [OPENAI_MODEL, CLAUDE_MODEL]

# A 1x1 transparent PNG.
PNG_B64 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
    )
).decode()

WEATHER_TOOL_OPENAI: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_CALL = {"name": "get_weather", "input": {"city": "Paris"}}


def openai_client(gateway: Gateway, key: str = CLIENT_KEY, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, timeout=15, **kwargs)


def anthropic_client(
    gateway: Gateway, key: str = CLIENT_KEY, *, bearer: bool = False, **kwargs: Any
) -> anthropic.Anthropic:
    credentials: dict[str, Any] = {"auth_token": key} if bearer else {"api_key": key}
    return anthropic.Anthropic(base_url=gateway.base_url, max_retries=0, timeout=15, **credentials, **kwargs)


def upstream(emu: Emulator, path_suffix: str = "") -> list[dict[str, Any]]:
    """The generating requests the emulator received (count_tokens and models excluded)."""
    return [
        r
        for r in emu.requests()
        if r["path"].endswith(("/chat/completions", "/v1/messages")) and r["path"].endswith(path_suffix)
    ]


def only_upstream_body(emu: Emulator) -> dict[str, Any]:
    [record] = upstream(emu)
    body: dict[str, Any] = record["body"]
    return body
