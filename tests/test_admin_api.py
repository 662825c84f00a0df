"""The admin API and managed keys through the real gunicorn (2 workers), Redis and a SQLite file: the key
lifecycle, rotation, expiry, model globs, per-key rpm, admin authentication, bad bodies, the usage
reports and /v1/usage, and (last) the canary: no admin secret in any log line at DEBUG or span."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_api.security.keys import key_id
from llm_api.store.store import Store
from tests.otlp_receiver import Receiver, run_http_receiver
from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway, wait_until

RUN = uuid.uuid4().hex[:8]
ADMIN_KEY = f"admin-canary-{RUN}"
ISSUED: list[str] = []  # every secret the gateway handed out in this module: none may leak


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with run_http_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('admin-db')}/llm_api.db"


@pytest.fixture(scope="module")
def admin_gateway(emulator: Emulator, database: str, receiver: Receiver) -> Iterator[Gateway]:
    env = gateway_env(
        emulator,
        ADMIN_API_KEY=ADMIN_KEY,
        DATABASE_URL=database,
        REDIS_URL="redis://127.0.0.1:6379/0",
        RATE_LIMIT_KEY_PREFIX=f"admin-{RUN}",
        MANAGED_KEY_CACHE_TTL_S="60",  # only the invalidation can make a change visible within 1 s
        LOG_LEVEL="DEBUG",
        OTEL_SDK_DISABLED="false",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=receiver.protocol,
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_METRIC_EXPORTER="none",
    )
    with run_gateway(env) as gateway:
        yield gateway


def admin(gateway: Gateway) -> httpx.Client:
    return gateway.client(key=ADMIN_KEY)


def create_key(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    with admin(gateway) as client:
        response = client.post("/admin/keys", json={"name": f"test-{uuid.uuid4().hex[:6]}", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    ISSUED.append(body["key"])
    return body


def chat(gateway: Gateway, key: str, **body: Any) -> httpx.Response:
    payload = {"messages": [{"role": "user", "content": "hello"}], **body}
    with gateway.client(key=key) as client:
        return client.post("/v1/chat", json=payload)


def statuses(gateway: Gateway, key: str, count: int) -> set[int]:
    """Statuses of `count` requests on fresh connections (spread over both workers)."""
    return {chat(gateway, key).status_code for _ in range(count)}


def test_key_lifecycle(admin_gateway: Gateway, emu: Emulator) -> None:
    created = create_key(
        admin_gateway,
        rpm_limit=1000,
        tpm_limit=50_000,
        budget_usd=12.5,
        budget_period="week",
        models=["claude-*"],
        metadata={"team": "search"},
    )
    assert created["key"].startswith("sk-llm-") and created["id"].startswith("key_")
    assert created["status"] == "active" and created["budget_period"] == "week"
    assert (created["rpm_limit"], created["tpm_limit"], created["budget_usd"]) == (1000, 50_000, 12.5)
    assert created["models"] == ["claude-*"] and created["metadata"] == {"team": "search"}
    assert created["created_at"].endswith("Z")

    assert statuses(admin_gateway, created["key"], 4) == {200}

    with admin(admin_gateway) as client:
        listed = client.get("/admin/keys")
        assert listed.status_code == 200
        assert created["id"] in [k["id"] for k in listed.json()["data"]]
        assert created["key"] not in listed.text and '"key"' not in listed.text

        def usage_shows_requests() -> dict[str, Any] | None:
            detail = client.get(f"/admin/keys/{created['id']}").json()
            return detail if detail["usage"]["minute_requests"] == 4 else None

        detail = wait_until(usage_shows_requests, timeout=5)
        assert created["key"] not in str(detail)
        assert detail["usage"]["minute_tokens"] > 0 and detail["usage"]["period_spend_usd"] >= 0

        patched = client.patch(f"/admin/keys/{created['id']}", json={"name": "renamed", "models": None})
        assert patched.status_code == 200 and patched.json()["name"] == "renamed"
        assert patched.json()["models"] is None and patched.json()["rpm_limit"] == 1000

        assert client.delete(f"/admin/keys/{created['id']}").status_code == 204
        revoked_at = time.monotonic()
    wait_until(lambda: statuses(admin_gateway, created["key"], 4) == {401}, timeout=1.0, interval=0)
    assert time.monotonic() - revoked_at < 1.0
    assert statuses(admin_gateway, created["key"], 6) == {401}
    with admin(admin_gateway) as client:
        assert client.get(f"/admin/keys/{created['id']}").json()["status"] == "revoked"
        for method, path in [
            ("GET", "/admin/keys/key_nope"),
            ("PATCH", "/admin/keys/key_nope"),
            ("DELETE", "/admin/keys/key_nope"),
            ("POST", "/admin/keys/key_nope/rotate"),
            ("PATCH", f"/admin/keys/{created['id']}"),  # revoked: no longer changeable
        ]:
            response = client.request(method, path, json={} if method in ("PATCH", "POST") else None)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["type"] == "not_found"


def test_rotation_with_grace(admin_gateway: Gateway, emu: Emulator) -> None:
    created = create_key(admin_gateway)
    with admin(admin_gateway) as client:
        first = client.post(f"/admin/keys/{created['id']}/rotate", json={"grace_s": 300})
        assert first.status_code == 200
        ISSUED.append(first.json()["key"])
        assert first.json()["key"] != created["key"] and first.json()["id"] == created["id"]
        assert statuses(admin_gateway, created["key"], 4) == {200}  # the old secret, inside its grace
        assert statuses(admin_gateway, first.json()["key"], 4) == {200}
        second = client.post(f"/admin/keys/{created['id']}/rotate")  # no body: grace 0
        assert second.status_code == 200
        ISSUED.append(second.json()["key"])
    for old in (created["key"], first.json()["key"]):
        wait_until(lambda old=old: statuses(admin_gateway, old, 4) == {401}, timeout=1.0, interval=0)
    assert statuses(admin_gateway, second.json()["key"], 4) == {200}


def test_expired_key_is_refused(admin_gateway: Gateway, emu: Emulator) -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    created = create_key(admin_gateway, expires_at=past)
    assert created["status"] == "expired"
    response = chat(admin_gateway, created["key"])
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "authentication_failed",
        "message": "the API key has expired",
        "request_id": response.headers["x-request-id"],
    }
    assert emu.requests() == []
    with admin(admin_gateway) as client:
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        assert client.patch(f"/admin/keys/{created['id']}", json={"expires_at": future}).status_code == 200
    wait_until(lambda: chat(admin_gateway, created["key"]).status_code == 200, timeout=1.0, interval=0)


def test_models_outside_the_globs_are_refused_before_upstream(admin_gateway: Gateway, emu: Emulator) -> None:
    created = create_key(admin_gateway, models=["gpt-4o*", "o3"])
    refused = chat(admin_gateway, created["key"], model="claude-opus-4-5")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["type"] == "model_not_allowed" and "claude-opus-4-5" in error["message"]
    default_model = chat(admin_gateway, created["key"])  # the default model is Claude: refused as well
    assert default_model.status_code == 403
    assert emu.requests() == []
    assert chat(admin_gateway, created["key"], model="gpt-4o-mini").status_code == 200
    assert chat(admin_gateway, CLIENT_KEY, model="claude-opus-4-5").status_code == 200  # API_KEYS: any model


def test_per_key_rpm_limit_and_its_change(admin_gateway: Gateway, emu: Emulator) -> None:
    created = create_key(admin_gateway, rpm_limit=3)
    got = [chat(admin_gateway, created["key"]).status_code for _ in range(5)]
    assert got == [200, 200, 200, 429, 429]
    with admin(admin_gateway) as client:
        assert client.patch(f"/admin/keys/{created['id']}", json={"rpm_limit": 100}).status_code == 200
    wait_until(lambda: chat(admin_gateway, created["key"]).status_code == 200, timeout=1.0, interval=0)


def test_admin_authentication(admin_gateway: Gateway, gateway: Gateway) -> None:
    managed = create_key(admin_gateway)
    with admin_gateway.client(key=None) as client:
        assert client.get("/admin/keys").status_code == 401
    for key, status in [(f"wrong-{RUN}", 401), (CLIENT_KEY, 403), (managed["key"], 403)]:
        with admin_gateway.client(key=key) as client:
            response = client.get("/admin/keys")
            assert response.status_code == status, (key, response.text)
            assert set(response.json()["error"]) == {"type", "message", "request_id"}
    with gateway.client(key=CLIENT_KEY) as client:  # no ADMIN_API_KEY: the admin API is not there
        assert client.get("/admin/keys").status_code == 404
        assert client.post("/admin/keys", json={"name": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/admin/keys", {}),
        ("POST", "/admin/keys", {"name": ""}),
        ("POST", "/admin/keys", {"name": "x", "budget_period": "year"}),
        ("POST", "/admin/keys", {"name": "x", "rpm_limit": 0}),
        ("POST", "/admin/keys", {"name": "x", "budget_usd": -1}),
        ("POST", "/admin/keys", {"name": "x", "models": "claude-*"}),
        ("POST", "/admin/keys", {"name": "x", "expires_at": "tomorrow"}),
        ("POST", "/admin/keys", {"name": "x", "colour": "red"}),
        ("POST", "/admin/keys", "not json"),
        ("POST", "/admin/keys", ["name"]),
        ("PATCH", "/admin/keys/key_x", {"name": None}),
        ("POST", "/admin/keys/key_x/rotate", {"grace_s": -1}),
        ("GET", "/admin/usage?group_by=colour", None),
        ("GET", "/admin/usage?from=yesterday", None),
        ("GET", "/admin/usage?from=2026-12-02&to=2026-12-01", None),
    ],
)
def test_bad_admin_requests_get_a_4xx(admin_gateway: Gateway, method: str, path: str, body: Any) -> None:
    with admin(admin_gateway) as client:
        if isinstance(body, str):
            response = client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
        else:
            response = client.request(method, path, json=body)
    assert 400 <= response.status_code < 500 and response.status_code != 404, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and error["request_id"] == response.headers["x-request-id"]


def _ledger(database: str, **where: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = await Store.open(database, migrate=False)
        try:
            return await store.ledger.rows(**where)
        finally:
            await store.aclose()

    return asyncio.run(read())


def test_usage_reports_add_up_to_the_ledger(admin_gateway: Gateway, emu: Emulator, database: str) -> None:
    mine, theirs = create_key(admin_gateway), create_key(admin_gateway)
    assert chat(admin_gateway, mine["key"]).status_code == 200
    assert chat(admin_gateway, mine["key"], model="gpt-4o").status_code == 200
    with admin_gateway.client(key=mine["key"]) as client:
        streamed = client.post(
            "/v1/chat", json={"stream": True, "messages": [{"role": "user", "content": "hi"}]}
        )
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    emu.fail({"status": 400})
    assert chat(admin_gateway, mine["key"]).status_code == 400
    assert chat(admin_gateway, theirs["key"]).status_code == 200
    answered = time.monotonic()

    def report(**params: str) -> list[dict[str, Any]]:
        with admin(admin_gateway) as client:
            response = client.get("/admin/usage", params=params)
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    [total] = wait_until(
        lambda: (rows := report(key_id=mine["id"])) and rows[0]["requests"] == 4 and rows, timeout=2.0
    )
    assert time.monotonic() - answered < 2.0
    assert (total["requests"], total["errors"]) == (4, 1)
    by_model = report(key_id=mine["id"], group_by="model,day")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert {r["day"] for r in by_model} == {today}
    assert {r["model"]: r["requests"] for r in by_model}["claude-opus-4-5"] == 3
    assert sum(r["requests"] for r in by_model) == 4
    assert any(r["model"] and r["model"].startswith("gpt-4o") for r in by_model)

    rows = _ledger(database, key_id=mine["id"])
    assert len(rows) == 4 and len({r["request_id"] for r in rows}) == 4
    assert sum(r["input_tokens"] or 0 for r in rows) == total["input_tokens"]
    assert sum(r["output_tokens"] or 0 for r in rows) == total["output_tokens"]
    [stream_row] = [r for r in rows if r["stream"]]
    assert stream_row["status"] == 200 and stream_row["ttft_ms"] is not None and stream_row["output_tokens"]
    [failed] = [r for r in rows if r["status"] == 400]
    assert failed["error_type"] == "upstream_rejected_request" and failed["endpoint"] == "/v1/chat"
    assert {r["provider"] for r in rows} == {"anthropic", "openai"}

    def by_key() -> dict[str, dict[str, Any]] | None:
        rows = {r["key_id"]: r for r in report(group_by="key", **{"from": today, "to": today})}
        return rows if theirs["id"] in rows else None  # its row may come from the other worker's batch

    grouped = wait_until(by_key, timeout=2.0)
    assert grouped[theirs["id"]]["requests"] == 1 and grouped[mine["id"]]["requests"] == 4

    with admin_gateway.client(key=mine["key"]) as client:
        own = client.get("/v1/usage", params={"key_id": theirs["id"], "group_by": "key"})
    assert own.status_code == 200
    assert own.json()["data"] == [{**{k: total[k] for k in total}, "key_id": mine["id"]}]

    # A key from API_KEYS is recorded too, under its id.
    assert chat(admin_gateway, CLIENT_KEY).status_code == 200
    static_id = key_id(CLIENT_KEY)
    wait_until(lambda: report(key_id=static_id)[0]["requests"] >= 1, timeout=2.0)


def test_no_admin_secret_reaches_logs_or_spans(admin_gateway: Gateway, receiver: Receiver) -> None:
    """Runs last in this module: every secret issued above, and the admin key, appear nowhere."""
    assert ISSUED, "the tests above issued keys"
    with admin(admin_gateway) as client:
        assert client.get("/admin/keys").status_code == 200
    wait_until(lambda: any(s.name.startswith("GET /admin") for s in receiver.received.spans()), timeout=10)
    output = admin_gateway.output()
    assert '"level": "DEBUG"' in output or '"levelname": "DEBUG"' in output or "DEBUG" in output
    texts = [text for span in receiver.received.spans() for text in span.texts()]
    for secret in (ADMIN_KEY, *ISSUED):
        assert secret not in output
        assert not any(secret in text for text in texts)
