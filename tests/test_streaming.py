"""Server-Sent Events from POST /v1/chat with stream=true: format, flushing, failures, disconnects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Emulator, Gateway, gateway_env, run_gateway, wait_until

MODELS = ["claude-opus-4-5", "gpt-4o"]


def body(model: str = "claude-opus-4-5", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a story"}],
        **extra,
    }


def read_events(gateway: Gateway, payload: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """The raw SSE blocks (separated by a blank line) of one streamed answer."""
    with gateway.client() as client, client.stream("POST", "/v1/chat", json=payload) as response:
        raw = response.read().decode()
    return response, [block for block in raw.split("\n\n") if block]


def deltas(events: list[str]) -> list[str]:
    out = []
    for event in events:
        if event.startswith("data: {") and '"delta"' in event:
            out.append(json.loads(event[len("data: ") :])["delta"])
    return out


@pytest.fixture(scope="module")
def pinging_gateway(emulator: Emulator) -> Iterator[Gateway]:
    env = gateway_env(emulator, STREAM_PING_INTERVAL_S="0.3", WEB_CONCURRENCY="1")
    with run_gateway(env) as gw:
        yield gw


@pytest.mark.parametrize("model", MODELS)
def test_stream_format(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.configure(text="one two three four five six", chunks=6)
    response, events = read_events(gateway, body(model))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "X-Request-ID" in response.headers
    # Only data lines (and comments): no named events, one line per event.
    for event in events:
        assert event.startswith(("data: ", ":")), event
        assert "\n" not in event
    assert "".join(deltas(events)) == "one two three four five six"
    assert len(deltas(events)) == 6
    assert events[-1] == "data: [DONE]"
    assert events.count("data: [DONE]") == 1
    [record] = emu.requests()
    assert record["body"]["stream"] is True
    assert record["outcome"] == "completed"


def test_openai_stream_asks_for_usage(gateway: Gateway, emu: Emulator) -> None:
    read_events(gateway, body("gpt-4o"))
    assert emu.requests()[0]["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("model", MODELS)
def test_deltas_are_flushed_as_they_arrive(gateway: Gateway, emu: Emulator, model: str) -> None:
    emu.configure(text="a b c d e", chunks=5, chunk_delay_s=0.25)
    arrivals: list[float] = []
    with gateway.client() as client, client.stream("POST", "/v1/chat", json=body(model)) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 0.8


@pytest.mark.parametrize(
    "fault",
    [
        {"provider": "anthropic", "fail_after_chunks": 0, "error_type": "overloaded_error"},
        {"provider": "anthropic", "status": 529},
        {"provider": "openai", "status": 503},
    ],
)
def test_failure_before_first_delta_is_retried(
    gateway: Gateway, emu: Emulator, fault: dict[str, Any]
) -> None:
    provider = fault.pop("provider")
    emu.fail(fault)
    response, events = read_events(gateway, body("claude-opus-4-5" if provider == "anthropic" else "gpt-4o"))
    assert response.status_code == 200
    assert "".join(deltas(events)) == "Hello from the emulator."
    assert events[-1] == "data: [DONE]"
    assert len(emu.requests()) == 2


def test_failure_before_first_delta_after_retries_is_a_json_error(gateway: Gateway, emu: Emulator) -> None:
    emu.fail(*[{"status": 529} for _ in range(4)])
    response, _ = read_events(gateway, body())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert len(emu.requests()) == 4


@pytest.mark.parametrize("model", MODELS)
def test_failure_mid_stream_sends_one_error_event_and_no_done(
    gateway: Gateway, emu: Emulator, model: str
) -> None:
    emu.configure(text="alpha beta gamma delta", chunks=4)
    emu.fail({"fail_after_chunks": 2, "message": "secret upstream detail sk-ant-canary"})
    response, events = read_events(gateway, body(model))
    assert response.status_code == 200
    assert deltas(events) == ["alpha", " beta"]
    last = json.loads(events[-1][len("data: ") :])
    assert set(last) == {"error", "detail"}
    assert last["error"].startswith("upstream_")
    assert "secret upstream detail" not in last["detail"] and "Traceback" not in last["detail"]
    assert "data: [DONE]" not in events
    assert len(emu.requests()) == 1  # nothing is retried once deltas were sent


def test_client_disconnect_closes_the_upstream(gateway: Gateway, emu: Emulator) -> None:
    emu.configure(chunks=100, chunk_delay_s=0.1)
    with gateway.client() as client, client.stream("POST", "/v1/chat", json=body()) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break
        hung_up = time.time()
    record = wait_until(
        lambda: next((r for r in emu.requests() if r["outcome"] == "client_disconnected"), None), timeout=5
    )
    assert record["disconnected_at"] - hung_up < 1.5
    assert record["chunks_sent"] < 100


def test_openai_client_disconnect_closes_the_upstream(gateway: Gateway, emu: Emulator) -> None:
    emu.configure(chunks=100, chunk_delay_s=0.1)
    with gateway.client() as client, client.stream("POST", "/v1/chat", json=body("gpt-4o")) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break
    wait_until(lambda: any(r["outcome"] == "client_disconnected" for r in emu.requests()), timeout=5)


def test_disconnect_while_upstream_is_silent_closes_it(pinging_gateway: Gateway, emu: Emulator) -> None:
    emu.configure(first_token_delay_s=30)
    with pinging_gateway.client() as client, client.stream("POST", "/v1/chat", json=body()) as response:
        for line in response.iter_lines():
            if line.startswith(":"):
                break
    wait_until(lambda: any(r["outcome"] == "client_disconnected" for r in emu.requests()), timeout=5)


def test_slow_first_token_gets_pings(pinging_gateway: Gateway, emu: Emulator) -> None:
    emu.configure(first_token_delay_s=1.0, text="late answer", chunks=2)
    response, events = read_events(pinging_gateway, body())
    assert response.status_code == 200
    first_data = next(i for i, e in enumerate(events) if e.startswith("data:"))
    assert first_data >= 2
    assert all(e == ": ping" for e in events[:first_data])
    assert "".join(deltas(events)) == "late answer"
    assert events[-1] == "data: [DONE]"


def test_streamed_validation_error_is_plain_json(gateway: Gateway, emu: Emulator) -> None:
    with gateway.client() as client:
        response = client.post("/v1/chat", json={"stream": True, "messages": []})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"


def _hang_up_after(gateway: Gateway, payload: dict[str, Any], seconds: float) -> str:
    """Send a request, give up after `seconds` without reading anything; return its request id."""
    request_id = f"hangup-{time.monotonic_ns()}"
    with gateway.client() as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat", json=payload, headers={"X-Request-ID": request_id}, timeout=seconds)
    return request_id


@pytest.mark.parametrize("stream", [False, True])
def test_hanging_up_before_the_first_byte_cancels_the_upstream(
    gateway: Gateway, emu: Emulator, stream: bool
) -> None:
    emu.configure(first_token_delay_s=10)
    request_id = _hang_up_after(gateway, {**body(), "stream": stream}, 0.5)
    record = wait_until(
        lambda: next((r for r in emu.requests() if r["outcome"] == "client_disconnected"), None), timeout=5
    )
    assert record["disconnected_at"] - record["received_at"] < 2.5
    line = wait_until(
        lambda: next((r for r in gateway.log_records() if r.get("request_id") == request_id), None)
    )
    assert line["status"] == 499 and line["error_type"] == "client_disconnected"
    assert not [r for r in gateway.log_records() if r.get("message") == "unhandled error"]
