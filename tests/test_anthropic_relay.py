"""POST /v1/messages to a Claude model: the body is relayed as the client sent it (Claude Code's fields
included), `anthropic-beta` and `?beta=true` passed on; only refused parameters and max_tokens change."""

from __future__ import annotations

from typing import Any

import httpx

from tests.compat import CLAUDE_MODEL, only_upstream_body, upstream
from tests.support import Emulator, Gateway

USER = {"role": "user", "content": "Say hello"}


def post(gateway: Gateway, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    with gateway.client() as client:
        return client.post("/v1/messages", json=body, **kwargs)


def claude_code_body(**extra: Any) -> dict[str, Any]:
    """A request shaped like Claude Code 2.1's."""
    return {
        "model": CLAUDE_MODEL,
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should run ls.", "signature": "sig-abc123"},
                    {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.py"}],
            },
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a command",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "user_abc_account_xyz_session_1"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "top_k": 40,
        "service_tier": "auto",
        **extra,
    }


def test_claude_code_fields_reach_the_upstream_unchanged(gateway: Gateway, emu: Emulator) -> None:
    body = claude_code_body()
    beta = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"
    response = post(gateway, body, params={"beta": "true"}, headers={"anthropic-beta": beta})
    assert response.status_code == 200, response.text
    assert "X-LLM-Clamped-Params" not in response.headers and "X-LLM-Dropped-Params" not in response.headers
    [record] = upstream(emu)
    assert record["body"] == body
    assert record["query"] == "beta=true"
    assert record["headers"]["anthropic-beta"] == beta


def test_streams_are_relayed_with_their_events(gateway: Gateway, emu: Emulator) -> None:
    body = claude_code_body(stream=True)
    with gateway.client() as client:
        response = client.post("/v1/messages", json=body, params={"beta": "true"})
    assert response.status_code == 200
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "thinking_delta" in response.text and "signature_delta" in response.text
    assert only_upstream_body(emu) == body


def test_max_tokens_above_the_models_limit_is_clamped(gateway: Gateway, emu: Emulator) -> None:
    response = post(gateway, {"model": "claude-haiku-4-5", "max_tokens": 100_000, "messages": [USER]})
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Clamped-Params"] == "max_tokens"
    assert only_upstream_body(emu)["max_tokens"] == 64_000


def test_sampling_parameters_a_model_refuses_are_dropped(gateway: Gateway, emu: Emulator) -> None:
    body = {"model": "claude-opus-4-7", "max_tokens": 50, "messages": [USER], "temperature": 0.5, "top_k": 5}
    response = post(gateway, body)
    assert response.status_code == 200, response.text
    assert response.headers["X-LLM-Dropped-Params"] == "temperature,top_k"
    sent = only_upstream_body(emu)
    assert "temperature" not in sent and "top_k" not in sent


def test_the_answer_is_relayed_as_the_upstream_sent_it(gateway: Gateway, emu: Emulator) -> None:
    answer = post(gateway, {"model": CLAUDE_MODEL, "max_tokens": 50, "messages": [USER]}).json()
    assert answer["type"] == "message" and answer["id"].startswith("msg_")
    assert answer["content"] == [{"type": "text", "text": "Hello from the emulator."}]
