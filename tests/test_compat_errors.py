"""Errors on the vendor-format endpoints: each in its endpoint's format and with the status its SDK maps
to the right exception; mid-stream failures as the format's in-stream error; nothing sent upstream for
a request the gateway refuses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.compat import CLAUDE_MODEL, MODELS, OPENAI_MODEL, anthropic_client, openai_client
from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway
from tests.transports import TRANSPORTS, gateway_on

USER: Any = {"role": "user", "content": "hello"}


@pytest.fixture(scope="module")
def limited(emulator: Emulator) -> Iterator[Gateway]:
    import uuid

    env = gateway_env(
        emulator,
        RATE_LIMIT="2/minute",
        RATE_LIMIT_KEY_PREFIX=f"compat-{uuid.uuid4().hex}",
        WEB_CONCURRENCY="1",
    )
    with run_gateway(env) as gw:
        yield gw


@pytest.fixture(scope="module", params=TRANSPORTS)
def upstream_gateway(
    gateway: Gateway, emulator: Emulator, request: pytest.FixtureRequest
) -> Iterator[Gateway]:
    """For the upstream failures: a gateway on each transport (LLM_HTTP_CLIENT), which must map them alike."""
    with gateway_on(request.param, session=gateway, emulator=emulator) as gw:
        yield gw


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    return error


def assert_anthropic_error(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert body["request_id"] == response.headers["request-id"] == response.headers["x-request-id"]


def test_bad_keys_are_authentication_errors(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai_client(gateway, key="nope").chat.completions.create(model=OPENAI_MODEL, messages=[USER])
    for bearer in (False, True):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            anthropic_client(gateway, key="nope", bearer=bearer).messages.create(
                model=CLAUDE_MODEL, max_tokens=10, messages=[USER]
            )
        assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_the_per_key_limit_is_a_rate_limit_error(limited: Gateway, emu: Emulator) -> None:
    client = openai_client(limited)
    client.models.list()
    anthropic_client(limited, bearer=True).models.list()  # the same key, the same bucket
    with pytest.raises(openai.RateLimitError):
        client.models.list()
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client(limited).messages.create(model=CLAUDE_MODEL, max_tokens=10, messages=[USER])


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        json.dumps({"model": OPENAI_MODEL}).encode(),
        json.dumps({"model": OPENAI_MODEL, "messages": []}).encode(),
        json.dumps({"model": OPENAI_MODEL, "messages": [USER], "stream": 0}).encode(),
        json.dumps({"model": OPENAI_MODEL, "messages": [USER], "max_tokens": "5"}).encode(),
        json.dumps({"model": CLAUDE_MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
    ],
)
def test_invalid_openai_bodies_are_400s_and_nothing_goes_upstream(
    gateway: Gateway, emu: Emulator, body: bytes
) -> None:
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    error = assert_openai_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert emu.requests() == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        json.dumps({"model": CLAUDE_MODEL, "messages": [USER]}).encode(),  # no max_tokens
        json.dumps({"model": CLAUDE_MODEL, "max_tokens": "5", "messages": [USER]}).encode(),
        json.dumps({"model": OPENAI_MODEL, "max_tokens": 5, "messages": [USER], "stream": 1}).encode(),
        json.dumps(
            {
                "model": OPENAI_MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "image"}]}],
            }
        ).encode(),
    ],
)
def test_invalid_anthropic_bodies_are_400s_and_nothing_goes_upstream(
    gateway: Gateway, emu: Emulator, body: bytes
) -> None:
    with gateway.client() as client:
        response = client.post("/v1/messages", content=body, headers={"content-type": "application/json"})
    assert_anthropic_error(response, 400, "invalid_request_error")
    assert emu.requests() == []


def test_validation_errors_never_echo_the_input(gateway: Gateway, emu: Emulator) -> None:
    secret = "canary-in-a-bad-body-93af"
    with gateway.client() as client:
        for path, body in (
            (
                "/v1/chat/completions",
                {
                    "model": OPENAI_MODEL,
                    "messages": [{"role": "user", "content": 5, "x": secret}],
                    "stream": secret,
                },
            ),
            (
                "/v1/messages",
                {
                    "model": CLAUDE_MODEL,
                    "max_tokens": secret,
                    "messages": [{"role": "user", "content": secret}],
                },
            ),
        ):
            response = client.post(path, json=body)
            assert 400 <= response.status_code < 500 and secret not in response.text


def test_unknown_routes_and_methods_answer_in_the_format_of_the_path(gateway: Gateway) -> None:
    with gateway.client() as client:
        assert_anthropic_error(client.get("/v1/messages"), 405, "invalid_request_error")
        assert_anthropic_error(client.post("/v1/messages/nope", json={}), 404, "not_found_error")
        assert_openai_error(client.get("/v1/chat/completions"), 405)
        assert_openai_error(client.post("/v1/embeddings", json={}), 404)


def test_an_oversized_body_is_a_413_in_the_format_of_the_path(emulator: Emulator) -> None:
    env = gateway_env(emulator, MAX_BODY_BYTES="2048", WEB_CONCURRENCY="1")
    big = {"model": CLAUDE_MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 4000}]}
    with run_gateway(env) as gw:
        with gw.client(CLIENT_KEY) as client:
            assert_anthropic_error(client.post("/v1/messages", json=big), 413, "request_too_large")
            assert_openai_error(client.post("/v1/chat/completions", json=big), 413)
        with pytest.raises(anthropic.APIStatusError) as caught:
            anthropic_client(gw).messages.create(**big)
        assert caught.value.status_code == 413


@pytest.mark.parametrize("model", MODELS)
def test_upstream_auth_failure_is_a_502_not_the_clients_401(
    upstream_gateway: Gateway, emu: Emulator, model: str
) -> None:
    emu.fail({"status": 401})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(upstream_gateway).chat.completions.create(model=model, messages=[USER])
    assert caught.value.status_code == 502
    emu.fail({"status": 401})
    with pytest.raises(anthropic.InternalServerError) as caught_a:
        anthropic_client(upstream_gateway).messages.create(model=model, max_tokens=10, messages=[USER])
    assert caught_a.value.status_code == 502


@pytest.mark.parametrize("model", MODELS)
def test_upstream_rate_limits_after_retries_are_429s(
    upstream_gateway: Gateway, emu: Emulator, model: str
) -> None:
    emu.fail(*[{"status": 429, "retry_after": "0"} for _ in range(8)])
    with pytest.raises(openai.RateLimitError):
        openai_client(upstream_gateway).chat.completions.create(model=model, messages=[USER])
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client(upstream_gateway).messages.create(model=model, max_tokens=10, messages=[USER])


@pytest.mark.parametrize("model", MODELS)
def test_mid_stream_failure_is_an_openai_error_chunk_then_the_end(
    upstream_gateway: Gateway, emu: Emulator, model: str
) -> None:
    emu.configure(text="alpha beta gamma delta", chunks=4)
    emu.fail({"fail_after_chunks": 2, "message": "secret upstream detail"})
    with upstream_gateway.client() as client:
        response = client.post(
            "/v1/chat/completions", json={"model": model, "messages": [USER], "stream": True}
        )
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in data
    last = json.loads(data[-1])
    assert set(last) == {"error"} and last["error"]["type"]
    assert "secret upstream detail" not in response.text
    with pytest.raises(openai.APIError):
        emu.configure(text="alpha beta gamma delta", chunks=4)
        emu.fail({"fail_after_chunks": 2})
        list(
            openai_client(upstream_gateway).chat.completions.create(model=model, messages=[USER], stream=True)
        )


@pytest.mark.parametrize("model", MODELS)
def test_mid_stream_failure_is_an_anthropic_error_event(
    upstream_gateway: Gateway, emu: Emulator, model: str
) -> None:
    emu.configure(text="alpha beta gamma delta", chunks=4)
    emu.fail({"fail_after_chunks": 2, "message": "secret upstream detail"})
    with upstream_gateway.client() as client:
        response = client.post(
            "/v1/messages", json={"model": model, "max_tokens": 50, "messages": [USER], "stream": True}
        )
    blocks = [b for b in response.text.split("\n\n") if b.strip() and not b.startswith(":")]
    assert blocks[-1].startswith("event: error\ndata: ")
    error = json.loads(blocks[-1].split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"]
    assert "message_stop" not in response.text and "secret upstream detail" not in response.text
    emu.configure(text="alpha beta gamma delta", chunks=4)
    emu.fail({"fail_after_chunks": 2})
    client = anthropic_client(upstream_gateway)
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=model, max_tokens=50, messages=[USER]) as stream,
    ):
        for _ in stream.text_stream:
            pass
