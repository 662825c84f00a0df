"""Managed keys, reservations and the ledger on the vendor-format endpoints (`/v1/chat/completions`,
`/v1/messages`, count_tokens, `/v1/models`), through the official SDKs and httpx, against gunicorn (2
workers), the shared Redis and a SQLite ledger of this module's own: budgets refused with 402 and model
globs with 403 in each endpoint's error format (nothing upstream), token headers on successes, and one
ledger row per request naming the endpoint, the models, the provider, the tokens and the cost."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from llm_api.store.store import Store
from tests.support import Emulator, Gateway, gateway_env, run_gateway, wait_until
from tests.test_ratelimit import SHARED_REDIS

RUN = uuid.uuid4().hex[:8]
ADMIN_KEY = f"admin-spend-{RUN}"
# $1 per million tokens in and out, cache reads at $0.1: costs are exact and non-zero.
PRICE = '{"input_usd_per_mtok": 1, "output_usd_per_mtok": 1, "cache_read_usd_per_mtok": 0.1}'
PRICES = f'{{"claude-sonnet-4-6": {PRICE}, "gpt-4o-mini": {PRICE}}}'
USER = {"role": "user", "content": "hello"}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('spend-endpoints')}/llm_api.db"


@pytest.fixture(scope="module")
def gateway(emulator: Emulator, database: str) -> Iterator[Gateway]:
    env = gateway_env(
        emulator,
        ADMIN_API_KEY=ADMIN_KEY,
        DATABASE_URL=database,
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=f"spend-endpoints-{RUN}",
        MODEL_PRICES=PRICES,
    )
    with run_gateway(env) as gw:
        yield gw


def create_key(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    with gateway.client(key=ADMIN_KEY) as admin:
        response = admin.post("/admin/keys", json={"name": f"test-{uuid.uuid4().hex[:6]}", **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def ledger_rows(database: str, key_id: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = await Store.open(database, migrate=False)
        try:
            return await store.ledger.rows(key_id=key_id)
        finally:
            await store.aclose()

    return asyncio.run(read())


def wait_rows(database: str, key_id: str, count: int) -> list[dict[str, Any]]:
    """The key's ledger rows, oldest first, once `count` of them are written (rows are batched per worker)."""
    rows = wait_until(
        lambda: (found := ledger_rows(database, key_id)) and len(found) >= count and found, timeout=5
    )
    assert len(rows) == count, rows
    return list(reversed(rows))


def openai_client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{gateway.base_url}/v1", max_retries=0)


def anthropic_client(gateway: Gateway, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=gateway.base_url, max_retries=0)


def test_a_spent_budget_is_402_in_each_format_and_nothing_goes_upstream(
    gateway: Gateway, emu: Emulator
) -> None:
    # One millionth of a dollar: no request's worst case (input estimate + max_tokens, at $1/MTok) fits.
    created = create_key(gateway, budget_usd=0.000001, budget_period="day")
    with pytest.raises(openai.APIStatusError) as openai_refusal:
        openai_client(gateway, created["key"]).chat.completions.create(
            model="gpt-4o-mini", messages=[USER], max_tokens=50
        )
    assert openai_refusal.value.status_code == 402
    error = openai_refusal.value.response.json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    assert "budget" in error["message"]

    with pytest.raises(anthropic.APIStatusError) as anthropic_refusal:
        anthropic_client(gateway, created["key"]).messages.create(
            model="claude-sonnet-4-6", messages=[USER], max_tokens=50
        )
    assert anthropic_refusal.value.status_code == 402
    body = anthropic_refusal.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "billing_error"
    assert "budget exceeded" in body["error"]["message"]

    # A relayed stream and a translated request are refused the same way, before anything is sent.
    with gateway.client(key=created["key"]) as client:
        stream = client.post(
            "/v1/messages",
            json={"model": "claude-sonnet-4-6", "messages": [USER], "max_tokens": 50, "stream": True},
        )
        translated = client.post(
            "/v1/chat/completions", json={"model": "claude-sonnet-4-6", "messages": [USER], "max_tokens": 50}
        )
    assert stream.status_code == 402 and stream.json()["error"]["type"] == "billing_error"
    assert translated.status_code == 402 and translated.json()["error"]["code"] == "budget_exceeded"
    assert emu.requests() == []


def test_a_budget_is_spent_by_the_vendor_endpoints_until_402(
    gateway: Gateway, emu: Emulator, database: str
) -> None:
    # Each answer costs ~110 micro-dollars and each worst case ~210: a few fit in 500, then 402.
    emu.configure(text=" ".join(["word"] * 100))
    created = create_key(gateway, budget_usd=0.0005, budget_period="day")
    client = openai_client(gateway, created["key"])
    statuses = []
    for _ in range(20):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=[USER], max_tokens=200)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
            break
    admitted = statuses.count(200)
    assert admitted >= 2 and statuses == [200] * admitted + [402], statuses
    rows = wait_rows(database, created["id"], admitted + 1)
    spent = sum((row["cost_usd"] for row in rows if row["status"] == 200), Decimal(0))
    assert 0 < spent <= Decimal("0.0005")
    assert [row["error_type"] for row in rows] == [None] * admitted + ["budget_exceeded"]


def test_models_outside_the_keys_globs_are_403_in_each_format(gateway: Gateway, emu: Emulator) -> None:
    created = create_key(gateway, models=["claude-*"])
    with pytest.raises(openai.PermissionDeniedError) as openai_refusal:
        openai_client(gateway, created["key"]).chat.completions.create(model="gpt-4o-mini", messages=[USER])
    error = openai_refusal.value.response.json()["error"]
    assert error["code"] == "model_not_allowed" and error["type"] == "permission_error"
    assert "gpt-4o-mini" in error["message"]

    claude = anthropic_client(gateway, created["key"])
    with pytest.raises(anthropic.PermissionDeniedError) as anthropic_refusal:
        claude.messages.create(model="gpt-4o-mini", messages=[USER], max_tokens=20)
    body = anthropic_refusal.value.response.json()
    assert body["error"]["type"] == "permission_error" and "gpt-4o-mini" in body["error"]["message"]
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.count_tokens(model="gpt-4o-mini", messages=[USER])
    assert emu.requests() == []

    # The globbed models are served on both endpoints (x-api-key and Bearer both name a managed key).
    assert claude.messages.create(model="claude-sonnet-4-6", messages=[USER], max_tokens=20).content
    answer = openai_client(gateway, created["key"]).chat.completions.create(
        model="claude-sonnet-4-6", messages=[USER], max_tokens=20
    )
    assert answer.choices[0].message.content


def test_every_vendor_endpoint_path_writes_its_ledger_row(
    gateway: Gateway, emu: Emulator, database: str
) -> None:
    created = create_key(gateway, tpm_limit=100000)
    key = created["key"]
    gpt = openai_client(gateway, key)
    claude = anthropic_client(gateway, key)

    relayed = gpt.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[USER], max_tokens=30
    )
    assert int(relayed.headers["x-ratelimit-limit-tokens"]) == 100000
    assert 0 <= int(relayed.headers["x-ratelimit-remaining-tokens"]) < 100000
    with gpt.chat.completions.create(
        model="claude-sonnet-4-6", messages=[USER], max_tokens=30, stream=True
    ) as chunks:
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with claude.messages.stream(model="claude-sonnet-4-6", messages=[USER], max_tokens=30) as events:
        assert events.get_final_message().usage.output_tokens > 0
    assert claude.messages.create(model="gpt-4o-mini", messages=[USER], max_tokens=30).content
    assert claude.messages.count_tokens(model="claude-sonnet-4-6", messages=[USER]).input_tokens > 0
    with httpx.Client(base_url=gateway.base_url, headers={"x-api-key": key}) as client:
        assert client.get("/v1/models").status_code == 200

    rows = wait_rows(database, created["id"], 6)
    seen = [
        (row["endpoint"], row["model_requested"], row["provider"], row["stream"], row["status"])
        for row in rows
    ]
    # Rows are batched per worker, so their order across workers is not the requests' order.
    assert sorted(seen, key=repr) == sorted(
        [
            ("/v1/chat/completions", "gpt-4o-mini", "openai", False, 200),
            ("/v1/chat/completions", "claude-sonnet-4-6", "anthropic", True, 200),
            ("/v1/messages", "claude-sonnet-4-6", "anthropic", True, 200),
            ("/v1/messages", "gpt-4o-mini", "openai", False, 200),
            ("/v1/messages/count_tokens", "claude-sonnet-4-6", "anthropic", False, 200),
            ("/v1/models", None, None, False, 200),
        ],
        key=repr,
    )
    chat_rows = [row for row in rows if row["endpoint"] in ("/v1/chat/completions", "/v1/messages")]
    other_rows = [row for row in rows if row not in chat_rows]
    assert len(chat_rows) == 4
    for row in chat_rows:  # the chat calls: exact usage from the provider, priced
        assert row["model_served"] and row["input_tokens"] > 0 and row["output_tokens"] > 0
        assert row["cost_usd"] is not None and row["cost_usd"] > 0 and row["usage_estimated"] is False
        expected = Decimal(row["input_tokens"] + row["output_tokens"]) / 1_000_000
        assert row["cost_usd"] == expected
    for row in other_rows:  # no reservation, nothing billed
        assert row["cost_usd"] is None and row["output_tokens"] is None


def test_a_cancelled_relayed_stream_is_billed_by_estimate(
    gateway: Gateway, emu: Emulator, database: str
) -> None:
    emu.configure(text=" ".join(["word"] * 100), chunks=100, chunk_delay_s=0.1)
    created = create_key(gateway, budget_usd=1, budget_period="day")
    body = {"model": "claude-sonnet-4-6", "messages": [USER], "max_tokens": 500, "stream": True}
    with (
        gateway.client(key=created["key"]) as client,
        client.stream("POST", "/v1/messages", json=body) as response,
    ):
        deltas = 0
        for line in response.iter_lines():
            deltas += line.startswith("event: content_block_delta")
            if deltas == 3:
                break
    wait_until(lambda: any(r["outcome"] == "client_disconnected" for r in emu.requests()), timeout=5)
    (row,) = wait_rows(database, created["id"], 1)
    assert row["endpoint"] == "/v1/messages" and row["stream"] is True
    assert row["usage_estimated"] is True
    # Billed for the input and what was relayed (a few words), far below the 500 tokens reserved.
    assert 3 <= row["output_tokens"] < 100
    assert row["cost_usd"] == Decimal(row["input_tokens"] + row["output_tokens"]) / 1_000_000
    with gateway.client(key=ADMIN_KEY) as admin:
        usage = admin.get(f"/admin/keys/{created['id']}").json()["usage"]
    assert Decimal(str(usage["period_spend_usd"])) == row["cost_usd"]  # nothing left held


def test_a_new_keys_budget_starts_at_zero_without_a_rebuild(gateway: Gateway, emu: Emulator) -> None:
    # A key created a moment ago has spent nothing: its period's spend is marked known in Redis at once,
    # so a burst of its first requests never waits for a rebuild from the ledger.
    created = create_key(gateway, budget_usd=1, budget_period="day")
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    budget = f"{{spend-endpoints-{RUN}:spend:{created['id']}}}:b:d{today}"
    client = redis.Redis.from_url(SHARED_REDIS, decode_responses=True)
    try:
        assert client.hgetall(budget) == {"spent": "0", "ok": "1"}
        assert client.ttl(budget) > 0  # it ends with its period (plus the settling margin)
        answer = openai_client(gateway, created["key"]).chat.completions.create(
            model="gpt-4o-mini", messages=[USER], max_tokens=20
        )
        assert answer.choices[0].message.content
        spent = wait_until(lambda: int(client.hget(budget, "spent") or 0) or None, timeout=5)
        assert spent > 0  # the request was charged to the same counter
    finally:
        client.close()
