"""The order of the checks on every chat endpoint: body size, then the key, then its rate limit, then the
body's validity — whatever else is wrong with the request, the first failing check answers, in the
endpoint's error format, and nothing goes upstream. (The endpoints call these checks themselves rather
than through FastAPI's dependencies: routers/direct.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from llm_api.codecs import anthropic_messages
from tests.support import Emulator, Gateway, gateway_env, run_gateway

MAX_BODY_BYTES = 4096
INVALID = b"{not json"


@dataclass(frozen=True)
class Route:
    path: str
    wire_format: str  # gateway, openai or anthropic
    key: str  # its own key, so that each route has a rate-limit bucket of its own


ROUTES = [
    Route("/v1/chat", "gateway", "order-key-chat-0001"),
    Route("/v1/chat/completions", "openai", "order-key-completions-0001"),
    Route("/v1/messages", "anthropic", "order-key-messages-0001"),
    Route("/v1/messages/count_tokens", "anthropic", "order-key-count-0001"),
]
IDS = [route.path for route in ROUTES]


@pytest.fixture(scope="module")
def ordered(emulator: Emulator) -> Iterator[Gateway]:
    """One worker (its in-process limit is the whole limit), one request per key and minute."""
    env = gateway_env(
        emulator,
        API_KEYS=",".join(route.key for route in ROUTES),
        RATE_LIMIT="1/minute",
        RATE_LIMIT_KEY_PREFIX=f"order-{uuid.uuid4().hex}",
        MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        WEB_CONCURRENCY="1",
    )
    with run_gateway(env) as gw:
        yield gw


def assert_error(route: Route, response: httpx.Response, status: int, gateway_type: str) -> None:
    """A `status` in the route's format; the gateway's error type where the format carries it."""
    assert response.status_code == status, response.text
    body = response.json()
    if route.wire_format == "anthropic":  # Anthropic's own type for the status, and the request id
        assert body["type"] == "error"
        assert body["error"]["type"] == anthropic_messages.error_type_for_status(status)
        assert body["request_id"] == response.headers["request-id"]
    else:
        assert body["error"]["code" if route.wire_format == "openai" else "type"] == gateway_type


def post(gateway: Gateway, route: Route, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}{route.path}",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_bad_key_with_a_bad_body_is_a_401(ordered: Gateway, emu: Emulator, route: Route) -> None:
    for headers in ({"Authorization": "Bearer not-a-key"}, {"x-api-key": "not-a-key"}, {}):
        response = post(ordered, route, INVALID, headers)
        assert_error(route, response, 401, "authentication_failed")
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert emu.requests() == []


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_an_oversized_body_is_a_413_before_the_key_is_looked_at(
    ordered: Gateway, emu: Emulator, route: Route
) -> None:
    response = post(ordered, route, b" " * (MAX_BODY_BYTES + 1), {"Authorization": "Bearer not-a-key"})
    assert_error(route, response, 413, "payload_too_large")
    assert emu.requests() == []


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_the_rate_limit_comes_before_the_bodys_validity(
    ordered: Gateway, emu: Emulator, route: Route
) -> None:
    headers = {"Authorization": f"Bearer {route.key}"}
    first = post(ordered, route, INVALID, headers)  # authenticated and charged, then refused as invalid
    assert_error(route, first, 422 if route.wire_format == "gateway" else 400, "invalid_request")
    second = post(ordered, route, INVALID, headers)
    assert_error(route, second, 429, "rate_limited")
    assert emu.requests() == []
