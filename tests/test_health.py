"""GET /healthz (liveness) and GET /readyz (readiness): no auth, no rate limit, quiet in the access log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from llm_api.config import Settings
from tests.support import CLIENT_KEY, Emulator, Gateway, free_port, gateway_env, wait_until

# In process, library deprecations surface as errors (tenacity's `initial=` in services/retry.py).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> Iterator[Callable[..., FastAPI]]:
    """An in-process app pointed at the emulator, with settings overridden per test."""
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")  # llm_api.main builds `app` from the env on import
    from llm_api.main import create_app

    def make(**overrides: str) -> FastAPI:
        env = gateway_env(emulator, OTEL_SDK_DISABLED="true", **overrides)
        fields: dict[str, Any] = {
            name.lower(): value for name, value in env.items() if name.lower() in Settings.model_fields
        }
        return create_app(Settings(**fields))

    yield make


def test_liveness_and_readiness_need_no_key(gateway: Gateway) -> None:
    live = httpx.get(f"{gateway.base_url}/healthz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["checks"]["providers"] == "ok"


def test_probes_are_not_in_the_access_log_at_default_level(gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz", "/healthz"):
        httpx.get(f"{gateway.base_url}{path}", headers={"X-Request-ID": "probe-quiet"})
    with gateway.client() as client:
        client.get("/v1/nothing-here", headers={"X-Request-ID": "probe-marker"})
    wait_until(lambda: any(r.get("request_id") == "probe-marker" for r in gateway.log_records()))
    assert not [r for r in gateway.log_records() if r.get("request_id") == "probe-quiet"]


def test_readiness_fails_without_a_provider(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(ANTHROPIC_API_KEY="", OPENAI_API_KEY="")) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200  # alive, just not ready
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"providers": "no provider configured", **_redis(response)},
    }


def _redis(response: httpx.Response) -> dict[str, str]:
    checks: dict[str, str] = response.json()["checks"]
    return {"redis": checks["redis"]} if "redis" in checks else {}


def test_readiness_names_redis_when_it_is_unreachable(make_app: Callable[..., FastAPI]) -> None:
    # Fail-closed: without Redis the limiter cannot serve, so the instance leaves the rotation.
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", RATE_LIMIT_FAIL_CLOSED="true")
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"providers": "ok", "redis": "unreachable"}


def test_readiness_with_redis_reachable(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:6379/0", RATE_LIMIT_FAIL_CLOSED="true")
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"providers": "ok", "redis": "ok"}


def test_probes_are_not_rate_limited(
    make_app: Callable[..., FastAPI], emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), TestClient(make_app(RATE_LIMIT="1/minute")) as client:
        statuses = [client.get(path).status_code for path in ["/healthz", "/readyz"] * 5]
        headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
        body = {"messages": [{"role": "user", "content": "hi"}]}
        chats = [client.post("/v1/chat", json=body, headers=headers).status_code for _ in range(2)]
    assert statuses == [200] * 10
    assert chats == [200, 429]  # the limiter is on; the probes simply do not pass through it
    access = [r for r in caplog.records if r.name == "llm_api.access" and r.levelno >= logging.INFO]
    assert [getattr(r, "path", None) for r in access] == ["/v1/chat", "/v1/chat"]
