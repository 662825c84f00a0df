"""Bad input: an oversized body is refused before parsing (413), malformed or hostile JSON is a 4xx JSON
error — never a 500 — and the worker keeps serving."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support import CLIENT_KEY, Emulator, Gateway

CANARY = "bad-input-canary-7f3c"
LIMIT = 32 * 1024 * 1024  # the default MAX_BODY_BYTES


def post_raw(gateway: Gateway, content: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    with gateway.client() as client:
        return client.post(
            "/v1/chat", content=content, headers={"content-type": "application/json", **headers}
        )


def assert_still_serving(gateway: Gateway) -> None:
    for _ in range(4):  # new connections: both workers
        with gateway.client() as client:
            ok = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200


def assert_json_error(response: httpx.Response, status: int | None = None) -> dict[str, object]:
    assert 400 <= response.status_code < 500, response.text[:300]
    if status is not None:
        assert response.status_code == status
    error: dict[str, object] = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_default_body_limit_fits_100_messages_of_32000_characters() -> None:
    import orjson

    for char in ("a", "\u00e9"):  # ASCII, and a two-byte UTF-8 script sent unescaped
        body = orjson.dumps({"messages": [{"role": "user", "content": char * 32_000}] * 100})
        assert len(body) <= LIMIT


def test_declared_oversized_body_is_413_before_it_is_read(gateway: Gateway, emu: Emulator) -> None:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + CLIENT_KEY.encode()
            + f"\r\nContent-Type: application/json\r\nContent-Length: {LIMIT + 1}\r\n\r\n{{".encode()
        )
        reply = b""
        while b"payload_too_large" not in reply and (data := sock.recv(65536)):
            reply += data
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b'"payload_too_large"' in reply
    assert emu.requests() == []
    assert_still_serving(gateway)


def test_chunked_oversized_body_is_413_and_the_worker_keeps_serving(gateway: Gateway, emu: Emulator) -> None:
    chunk = b"x" * (1024 * 1024)

    def body() -> Iterator[bytes]:
        for _ in range(LIMIT // len(chunk) + 2):
            yield chunk

    response = post_raw(gateway, body())  # no content-length: Transfer-Encoding: chunked
    assert_json_error(response, 413)
    assert_still_serving(gateway)
    assert len(emu.requests()) == 4  # only the follow-up requests went upstream


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"messages": "hello"}', id="wrong-type-messages"),
        pytest.param(b'{"messages": [{"role": "user", "content": 5}]}', id="wrong-type-content"),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}', id="wrong-type-int"
        ),
        pytest.param(b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', id="invalid-utf8"),
        pytest.param(b'{"messages": [{"role": "user", "content": "\\ud800"}]}', id="lone-surrogate"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
        pytest.param(b'{"messages": [' + b"{" * 50_000 + b"}" * 50_000 + b"]}", id="nested-objects"),
        pytest.param(
            b'{"messages": [' + b",".join([b'{"role": "user", "content": "x"}'] * 200_000) + b"]}", id="huge"
        ),
        pytest.param(
            b'{"messages": [{"role": "user", "content": "x"}], "extra": ' + b"1" * 5_000_000 + b"}",
            id="huge-number",
        ),
    ],
)
def test_malformed_json_is_a_4xx_json_error_never_500(
    gateway: Gateway, emu: Emulator, content: bytes
) -> None:
    assert_json_error(post_raw(gateway, content))
    assert emu.requests() == []


def test_422_names_field_and_rule_but_never_echoes_content(gateway: Gateway, emu: Emulator) -> None:
    bodies = [
        {"messages": [{"role": "wizard", "content": CANARY}]},
        {"messages": [{"role": "user", "content": CANARY, "name": CANARY}]},
        {"messages": [{"role": "user", "content": CANARY * 5000}]},
        {"messages": [{"role": "assistant", "content": CANARY}]},
        {"messages": [{"role": "user", "content": CANARY}], "temperature": CANARY},
    ]
    for body in bodies:
        with gateway.client() as client:
            response = client.post("/v1/chat", json=body)
        error = assert_json_error(response, 422)
        assert error["type"] == "invalid_request"
        assert CANARY not in response.text
    assert_still_serving(gateway)
