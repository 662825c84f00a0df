"""Canary test for the vendor-format endpoints: on all four paths (success, stream, tools, invalid body,
upstream 400 quoting the prompt, mid-stream failure, unknown key), prompt text and keys never reach the
gateway's output at LOG_LEVEL=DEBUG, its spans, or its error bodies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.compat import CLAUDE_MODEL, MODELS
from tests.otlp_receiver import Receiver, run_http_receiver
from tests.support import Emulator, Gateway, gateway_env, run_gateway, wait_until

RUN = uuid.uuid4().hex[:8]
PROMPT = f"prompt-canary-{RUN}"
SYSTEM = f"system-canary-{RUN}"
TOOL = f"tool-canary-{RUN}"
CLIENT = f"client-canary-{RUN}"
UNKNOWN = f"unknown-canary-{RUN}"
PROVIDER = f"sk-provider-canary-{RUN}"
CANARIES = (PROMPT, SYSTEM, TOOL, CLIENT, UNKNOWN, PROVIDER)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with run_http_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def canary_gateway(emulator: Emulator, receiver: Receiver) -> Iterator[Gateway]:
    env = gateway_env(
        emulator,
        API_KEYS=CLIENT,
        ANTHROPIC_API_KEY=PROVIDER,
        OPENAI_API_KEY=PROVIDER,
        LOG_LEVEL="DEBUG",
        WEB_CONCURRENCY="1",
        OTEL_SDK_DISABLED="false",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORT_INTERVAL="300",
    )
    with run_gateway(env) as gateway:
        yield gateway


def openai_body(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"say {PROMPT}"}],
        "tools": [{"type": "function", "function": {"name": "t", "description": TOOL, "parameters": {}}}],
        **extra,
    }


def anthropic_body(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 50,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": f"say {PROMPT}"}],
        "tools": [{"name": "t", "description": TOOL, "input_schema": {"type": "object"}}],
        **extra,
    }


def test_no_canary_reaches_logs_spans_or_error_bodies(
    canary_gateway: Gateway, receiver: Receiver, emu: Emulator
) -> None:
    sent = 0
    bodies: list[str] = []
    with httpx.Client(base_url=canary_gateway.base_url, timeout=15) as http:

        def post(path: str, body: dict[str, Any], key: str = CLIENT) -> httpx.Response:
            nonlocal sent
            sent += 1
            response = http.post(path, json=body, headers={"x-api-key": key})
            bodies.append(response.text)
            return response

        for model in MODELS:
            for stream in (False, True):
                assert post("/v1/chat/completions", openai_body(model, stream=stream)).status_code == 200
                assert post("/v1/messages", anthropic_body(model, stream=stream)).status_code == 200
            emu.fail({"status": 400, "message": f"bad value {PROMPT!r}"})
            assert post("/v1/chat/completions", openai_body(model)).status_code == 400
            emu.fail({"status": 400, "message": f"bad value {PROMPT!r}"})
            assert post("/v1/messages", anthropic_body(model)).status_code == 400
            emu.configure(text="a b c d", chunks=4)
            emu.fail({"fail_after_chunks": 1, "message": f"stream died at {PROMPT}"})
            post("/v1/messages", anthropic_body(model, stream=True))
            emu.fail({"fail_after_chunks": 1, "message": f"stream died at {PROMPT}"})
            post("/v1/chat/completions", openai_body(model, stream=True))
            emu.reset()
        invalid = [
            (
                "/v1/chat/completions",
                {"model": CLAUDE_MODEL, "messages": [{"role": "robot", "content": PROMPT}]},
            ),
            (
                "/v1/messages",
                {
                    "model": CLAUDE_MODEL,
                    "max_tokens": PROMPT,
                    "messages": [{"role": "user", "content": PROMPT}],
                },
            ),
            (
                "/v1/messages/count_tokens",
                {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": PROMPT}]}]},
            ),
        ]
        for path, body in invalid:
            assert 400 <= post(path, body).status_code < 500
        assert post("/v1/messages/count_tokens", anthropic_body("gpt-4o")).status_code == 200
        assert post("/v1/messages", anthropic_body(CLAUDE_MODEL), key=UNKNOWN).status_code == 401

    for text in bodies:  # the emulator's answers do not quote the prompt, and error bodies must not
        assert not any(c in text for c in CANARIES), text[:300]
    wait_until(
        lambda: len([r for r in canary_gateway.log_records() if r.get("logger") == "llm_api.access"]) >= sent
    )
    output = canary_gateway.output()
    for canary in CANARIES:
        assert canary not in output, f"{canary} leaked:\n" + "\n".join(
            line for line in output.splitlines() if canary in line
        )
    # One GenAI span per upstream call made (8 successes, 4 upstream 400s, 4 broken streams, 1 count).
    wait_until(lambda: len([s for s in receiver.received.spans() if s.kind == "CLIENT"]) >= 16)
    for span in receiver.received.spans():
        assert not any(c in text for text in span.texts() for c in CANARIES), span.name
