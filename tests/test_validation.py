"""Invalid requests get a 422 (never a 500), name the rule but not the content, send nothing upstream."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Emulator, Gateway

SECRET_PROMPT = "canary-validation-7f3a9 do not echo"
USER = {"role": "user", "content": "hello"}

INVALID_BODIES: list[tuple[str, Any]] = [
    ("no messages", {"messages": []}),
    ("messages missing", {"model": "claude-opus-4-5"}),
    ("bad role", {"messages": [{"role": "tool", "content": SECRET_PROMPT}]}),
    ("empty content", {"messages": [{"role": "user", "content": ""}]}),
    ("blank content", {"messages": [{"role": "user", "content": "   \n\t "}]}),
    ("content too long", {"messages": [{"role": "user", "content": "x" * 32_001}]}),
    ("content wrong type", {"messages": [{"role": "user", "content": 42}]}),
    ("last message not user", {"messages": [USER, {"role": "assistant", "content": SECRET_PROMPT}]}),
    ("unknown field", {"messages": [USER], "top_k": 5}),
    ("unknown message field", {"messages": [{**USER, "name": "bob"}]}),
    ("max_tokens zero", {"messages": [USER], "max_tokens": 0}),
    ("max_tokens too big", {"messages": [USER], "max_tokens": 8193}),
    ("temperature too high", {"messages": [USER], "temperature": 1.5}),
    ("temperature negative", {"messages": [USER], "temperature": -0.1}),
    ("stream not bool", {"messages": [USER], "stream": "yes please"}),
    ("too many messages", {"messages": [USER] * 101}),
    ("body is a list", [USER]),
    ("body is a string", "hello"),
]


@pytest.mark.parametrize(("case", "body"), INVALID_BODIES, ids=[c for c, _ in INVALID_BODIES])
def test_invalid_body_is_422_and_sends_nothing(gateway: Gateway, emu: Emulator, case: str, body: Any) -> None:
    with gateway.client() as client:
        response = client.post("/v1/chat", json=body)
    assert response.status_code == 422, (case, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert SECRET_PROMPT not in response.text
    assert emu.requests() == []


def test_content_at_the_limit_is_accepted(gateway: Gateway, emu: Emulator) -> None:
    with gateway.client() as client:
        response = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "y" * 32_000}]})
    assert response.status_code == 200, response.text


def test_whitespace_is_stripped_before_the_length_check(gateway: Gateway, emu: Emulator) -> None:
    content = "  " + "z" * 32_000 + "\n\n"
    with gateway.client() as client:
        response = client.post("/v1/chat", json={"messages": [{"role": "user", "content": content}]})
    assert response.status_code == 200, response.text
    assert emu.requests()[0]["body"]["messages"][0]["content"] == "z" * 32_000


def test_validation_details_name_field_and_rule(gateway: Gateway, emu: Emulator) -> None:
    with gateway.client() as client:
        response = client.post("/v1/chat", json={"messages": [USER], "max_tokens": 0})
    details = response.json()["error"]["details"]
    assert details[0]["loc"] == ["max_tokens"]
    assert details[0]["type"] == "greater_than_equal"
    assert all("input" not in d for d in details)


def test_malformed_json_is_a_4xx_not_a_500(gateway: Gateway, emu: Emulator) -> None:
    with gateway.client() as client:
        response = client.post(
            "/v1/chat", content=b'{"messages": [', headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert client.get("/healthz").status_code == 200
