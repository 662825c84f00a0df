"""Authentication: bearer keys on every /v1 route, keys from API_KEYS and API_KEY_HASHES, refusal to start
without keys, and 401s that never reach the upstream."""

from __future__ import annotations

import hashlib
import subprocess

import httpx
import pytest
from starlette.testclient import TestClient

from llm_api.config import Settings
from llm_api.security.keys import KeyStore, key_id
from tests.support import BIN, CLIENT_KEY, ROOT, Emulator, Gateway, free_port, gateway_env, wait_until

BODY = {"messages": [{"role": "user", "content": "hello"}]}


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["type"] == "authentication_failed"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dGVzdA==",
        f"Token {CLIENT_KEY}",
        "Bearer not-a-key",
        f"{CLIENT_KEY}",
    ],
)
def test_missing_or_wrong_key_is_401_and_nothing_goes_upstream(
    gateway: Gateway, emu: Emulator, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for stream in (False, True):
        response = httpx.post(
            f"{gateway.base_url}/v1/chat", json={**BODY, "stream": stream}, headers=headers, timeout=10
        )
        assert_401(response)
    assert emu.requests() == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_word_is_case_insensitive(gateway: Gateway, emu: Emulator, scheme: str) -> None:
    response = httpx.post(
        f"{gateway.base_url}/v1/chat", json=BODY, headers={"Authorization": f"{scheme} {CLIENT_KEY}"}
    )
    assert response.status_code == 200
    assert len(emu.requests()) == 1


def test_access_log_names_the_key_by_its_id(gateway: Gateway, emu: Emulator) -> None:
    response = gateway.client().post("/v1/chat", json=BODY)
    request_id = response.headers["x-request-id"]
    line = wait_until(
        lambda: next(
            (r for r in gateway.log_records() if r.get("request_id") == request_id and "key_id" in r), None
        )
    )
    assert line["key_id"] == key_id(CLIENT_KEY) == hashlib.sha256(CLIENT_KEY.encode()).hexdigest()[:12]
    assert CLIENT_KEY not in gateway.output()


def test_key_store_reads_api_keys_and_hashes() -> None:
    settings = Settings(
        api_keys=" , key-one ,, ", api_key_hashes=hashlib.sha256(b"key-two").hexdigest().upper()
    )
    assert [k.get_secret_value() for k in settings.api_keys] == ["key-one"]  # blank entries ignored
    store = KeyStore(keys=settings.api_keys, digests_hex=settings.api_key_hashes)
    assert store.authenticate("key-one") == key_id("key-one")
    assert store.authenticate("key-two") == key_id("key-two")
    assert store.authenticate("key-three") is None
    assert store.authenticate("key-one\udcff") is None  # undecodable input does not crash
    with pytest.raises(ValueError, match="API_KEY_HASHES"):
        Settings(api_keys="", api_key_hashes="abc")


def test_hashed_keys_authenticate_and_docs_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")  # llm_api.main builds an app from the env on import
    from llm_api.main import create_app

    digest = hashlib.sha256(b"hashed-key").hexdigest()
    settings = Settings(api_key_hashes=digest, docs_enabled=False, otel_sdk_disabled=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404
        # Authenticated, then refused for want of a provider: auth passed (no 401).
        ok = client.post("/v1/chat", json=BODY, headers={"Authorization": "Bearer hashed-key"})
        assert ok.status_code == 503 and ok.json()["error"]["type"] == "provider_not_configured"
        assert_401(client.post("/v1/chat", json=BODY, headers={"Authorization": "Bearer other"}))
    with TestClient(create_app(Settings(api_keys="k", otel_sdk_disabled=True))) as client:
        assert client.get("/openapi.json").status_code == 200


def test_development_switch_lets_everyone_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")
    from llm_api.main import create_app

    settings = Settings(allow_unauthenticated=True, otel_sdk_disabled=True)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/chat", json=BODY)
        assert response.status_code == 503  # past authentication, no provider configured


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "llm_api.main:app"],
        cwd=ROOT,
        env={**env, "BIND": f"127.0.0.1:{free_port()}", "WEB_CONCURRENCY": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_gunicorn_refuses_to_start_without_keys(emulator: Emulator) -> None:
    # (Invalid limit strings fail the same way, in the same Settings(): see test_ratelimit.)
    proc = _start(gateway_env(emulator, API_KEYS=" , "))
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0, output
    assert "no client API key configured: set API_KEYS or API_KEY_HASHES" in output
    assert "ALLOW_UNAUTHENTICATED=true" in output
