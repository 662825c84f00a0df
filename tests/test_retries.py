"""Retry policy and upstream error mapping, counted by the upstream calls the emulator received.

The whole matrix runs on both upstream transports (LLM_HTTP_CLIENT=aiohttp, the direct pooled client, and
sdk, the official SDK clients): they must classify every failure alike."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Emulator, Gateway, gateway_env, run_gateway
from tests.transports import TRANSPORTS, gateway_on

RETRYABLE = [408, 429, 500, 502, 503, 504, 529]
ATTEMPTS = 4  # the default LLM_RETRY_ATTEMPTS


def chat(gateway: Gateway, model: str = "claude-opus-4-5", **body: Any) -> Any:
    with gateway.client() as client:
        return client.post(
            "/v1/chat", json={"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
        )


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def gateway(gateway: Gateway, emulator: Emulator, transport: str) -> Iterator[Gateway]:
    """The session gateway on the module's transport (one of its own when the session runs the other)."""
    with gateway_on(transport, session=gateway, emulator=emulator) as gw:
        yield gw


@pytest.fixture(scope="module")
def patient_gateway(emulator: Emulator, transport: str) -> Iterator[Gateway]:
    """Backoff waits up to 1.5 s and a short per-attempt timeout, to observe Retry-After and hangs."""
    env = gateway_env(
        emulator,
        LLM_HTTP_CLIENT=transport,
        LLM_RETRY_WAIT_MIN_S="0.01",
        LLM_RETRY_WAIT_MAX_S="1.5",
        LLM_TIMEOUT_S="0.5",
        WEB_CONCURRENCY="1",
    )
    with run_gateway(env) as gw:
        yield gw


def gaps(records: list[dict[str, Any]]) -> list[float]:
    times = [r["received_at"] for r in records]
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("status", RETRYABLE)
def test_transient_status_is_retried_then_succeeds(
    gateway: Gateway, emu: Emulator, status: int, provider: str
) -> None:
    emu.fail({"status": status})
    response = chat(gateway, model="claude-opus-4-5" if provider == "anthropic" else "gpt-4o")
    assert response.status_code == 200, response.text
    assert [r["status"] for r in emu.requests()] == [status, 200]


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [
        (400, 400, "upstream_rejected_request"),
        (404, 404, "upstream_rejected_request"),
        (413, 413, "upstream_rejected_request"),
        (422, 422, "upstream_rejected_request"),
        (401, 502, "upstream_auth_failed"),
        (403, 502, "upstream_auth_failed"),
    ],
)
@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_request_errors_are_never_retried(
    gateway: Gateway, emu: Emulator, provider: str, status: int, client_status: int, error_type: str
) -> None:
    emu.fail({"status": status, "message": "upstream says: the prompt 'hi' is bad"})
    response = chat(gateway, model="claude-opus-4-5" if provider == "anthropic" else "gpt-4o")
    assert response.status_code == client_status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert "the prompt" not in response.text  # the upstream's raw message is not relayed
    assert response.headers.get("WWW-Authenticate") is None
    assert len(emu.requests()) == 1


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [
        (429, 429, "upstream_rate_limited"),
        (529, 503, "upstream_unavailable"),
        (500, 503, "upstream_unavailable"),
        (503, 503, "upstream_unavailable"),
        (502, 503, "upstream_unavailable"),
        (504, 504, "upstream_timeout"),
        (408, 504, "upstream_timeout"),
    ],
)
def test_exhausted_retries_map_to_clear_errors(
    gateway: Gateway, emu: Emulator, status: int, client_status: int, error_type: str
) -> None:
    emu.fail(*[{"status": status, "retry_after": "0"} for _ in range(ATTEMPTS + 1)])
    response = chat(gateway)
    assert response.status_code == client_status
    assert response.json()["error"]["type"] == error_type
    # Exactly our attempts: the SDK's own retries are off (no 3 x 4 multiplication).
    assert len(emu.requests()) == ATTEMPTS
    if client_status == 429:
        assert int(response.headers["Retry-After"]) >= 1


def test_upstream_429_without_retry_after_still_tells_the_client_when(
    gateway: Gateway, emu: Emulator
) -> None:
    emu.fail(*[{"status": 429} for _ in range(ATTEMPTS)])
    response = chat(gateway, model="gpt-4o")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_connection_dropped_is_retried(gateway: Gateway, emu: Emulator) -> None:
    emu.fail({"drop": True})
    assert chat(gateway).status_code == 200
    assert len(emu.requests()) == 2


def test_connection_dropped_every_time_is_502(gateway: Gateway, emu: Emulator) -> None:
    emu.fail(*[{"drop": True} for _ in range(ATTEMPTS)])
    response = chat(gateway, model="gpt-4o")
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_connection_failed"
    assert len(emu.requests()) == ATTEMPTS


def test_connection_refused_is_502(emulator: Emulator, transport: str) -> None:
    env = gateway_env(
        emulator,
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
        LLM_HTTP_CLIENT=transport,
        WEB_CONCURRENCY="1",
        LLM_RETRY_ATTEMPTS="2",
    )
    with run_gateway(env) as gw:
        response = chat(gw)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_connection_failed"


def test_hung_upstream_times_out_and_is_retried(patient_gateway: Gateway, emu: Emulator) -> None:
    emu.fail({"hang": True})
    response = chat(patient_gateway)
    assert response.status_code == 200, response.text
    first, second = emu.requests()
    assert first["outcome"] == "client_disconnected"
    assert second["status"] == 200


@pytest.mark.parametrize("model", ["claude-opus-4-5", "gpt-4o"])
def test_hung_upstream_every_time_is_504(patient_gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.fail(*[{"hang": True} for _ in range(ATTEMPTS)])
    response = chat(patient_gateway, model=model)
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "upstream_timeout"


@pytest.mark.parametrize(
    ("header", "value", "expected_s"), [("retry_after", "1", 1.0), ("retry_after_ms", "700", 0.7)]
)
def test_retry_after_is_honoured(
    patient_gateway: Gateway, emu: Emulator, header: str, value: str, expected_s: float
) -> None:
    emu.fail({"status": 429, header: value})
    assert chat(patient_gateway).status_code == 200
    [gap] = gaps(emu.requests())
    assert expected_s - 0.05 <= gap < expected_s + 1.0


def test_retry_after_is_capped_by_the_maximum_wait(patient_gateway: Gateway, emu: Emulator) -> None:
    emu.fail({"status": 503, "retry_after": "30"})
    assert chat(patient_gateway).status_code == 200
    [gap] = gaps(emu.requests())
    assert 1.4 <= gap < 3.0


@pytest.mark.parametrize("model", ["claude-opus-4-5", "gpt-4o"])
@pytest.mark.parametrize("stream", [False, True])
def test_unusable_upstream_answer_is_502_not_retried(
    gateway: Gateway, emu: Emulator, model: str, stream: bool
) -> None:
    """A 200 whose body is not the provider's shape (or a stream event that is not JSON): 502, never 500."""
    emu.fail({"garbage": True})
    response = chat(gateway, model=model, stream=stream)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "upstream_error"
    assert len(emu.requests()) == 1
