"""Budgets on routed requests (issues 10 and 11 together): an alias is reserved at its dearest target and
billed at the price of the target that served, an alias with an unpriced target is refused for a budgeted
key, and an answer from the response cache costs nothing. The real gateway (gunicorn, 2 workers) with a
gateway file, the shared Redis, a SQLite ledger of this module's own, the official openai SDK as client."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway, wait_until
from tests.test_ratelimit import SHARED_REDIS
from tests.test_spend_endpoints import ADMIN_KEY, create_key, ledger_rows

RUN = uuid.uuid4().hex[:8]
CHEAP, DEAR, UNPRICED = "gpt-4o-mini", "claude-sonnet-4-6", "private-llm-1"
# USD per million tokens, in and out alike: the dear model costs ten times the cheap one.
PRICES = {
    CHEAP: {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1},
    DEAR: {"input_usd_per_mtok": 10, "output_usd_per_mtok": 10},
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('routed-spend')}/llm_api.db"


@pytest.fixture(scope="module")
def gateway(emulator: Emulator, database: str) -> Iterator[Gateway]:
    text = f"""
deployments:
  - {{name: openai, provider: openai, base_url: "{emulator.openai_url}", api_key_env: OPENAI_API_KEY,
      models: ["gpt-*", "private-*"]}}
  - {{name: anthropic, provider: anthropic, base_url: "{emulator.anthropic_url}",
      api_key_env: ANTHROPIC_API_KEY, models: ["claude-*"]}}
models:
  thrifty: {{strategy: fallback, targets: [{CHEAP}, {DEAR}]}}
  mystery: {{strategy: fallback, targets: [{CHEAP}, {UNPRICED}]}}
  remembered: {{targets: [{CHEAP}], cache: true}}
"""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(text)
    env = gateway_env(
        emulator,
        GATEWAY_CONFIG=file.name,
        ADMIN_API_KEY=ADMIN_KEY,
        DATABASE_URL=database,
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=f"routed-spend-{RUN}",
        ROUTER_KEY_PREFIX=f"routed-spend-{RUN}-router",
        MODEL_PRICES=json.dumps(PRICES),
        LLM_RETRY_ATTEMPTS="1",
    )
    try:
        with run_gateway(env, ready_timeout_s=180) as gw:
            yield gw
    finally:
        Path(file.name).unlink()


def client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{gateway.base_url}/v1", max_retries=0)


def ask(gateway: Gateway, key: str, model: str, prompt: str = "hello", **extra: Any) -> Any:
    return client(gateway, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=100, **extra
    )


def rows_of(database: str, key_id: str, *request_ids: str) -> list[dict[str, Any]]:
    """The key's ledger rows of these requests, in their order, once all are written (each worker writes
    its own batches, so the rows' order in the table is not the requests')."""
    rows = wait_until(
        lambda: (found := ledger_rows(database, key_id)) and len(found) >= len(request_ids) and found,
        timeout=10,
    )
    assert len(rows) == len(request_ids), rows
    by_id = {row["request_id"]: row for row in rows}
    return [by_id[request_id] for request_id in request_ids]


def priced(row: dict[str, Any], model: str) -> Decimal:
    per_mtok = Decimal(PRICES[model]["input_usd_per_mtok"])
    return Decimal(row["input_tokens"] + row["output_tokens"]) * per_mtok / 1_000_000


def period_spend(gateway: Gateway, key_id: str) -> float:
    with gateway.client(key=ADMIN_KEY) as admin:
        response = admin.get(f"/admin/keys/{key_id}")
    assert response.status_code == 200, response.text
    return float(response.json()["usage"]["period_spend_usd"])


def test_a_fallback_is_billed_at_the_price_of_the_target_that_served(
    gateway: Gateway, emu: Emulator, database: str
) -> None:
    created = create_key(gateway, budget_usd=100, budget_period="month")
    first = ask(gateway, created["key"], "thrifty")
    assert (first.http_response.status_code, first.headers["x-llm-model"]) == (200, CHEAP)
    emu.fail({"status": 503}, provider="openai")
    second = ask(gateway, created["key"], "thrifty")
    assert (second.http_response.status_code, second.headers["x-llm-model"]) == (200, DEAR)

    cheap_row, dear_row = rows_of(
        database, created["id"], first.headers["x-request-id"], second.headers["x-request-id"]
    )
    assert (cheap_row["model_requested"], dear_row["model_requested"]) == ("thrifty", "thrifty")
    assert cheap_row["cost_usd"] == priced(cheap_row, CHEAP) > 0
    assert dear_row["cost_usd"] == priced(dear_row, DEAR) > 0
    # The budget is charged what the ledger says, in every worker's view.
    total = float(cheap_row["cost_usd"] + dear_row["cost_usd"])
    assert wait_until(lambda: abs(period_spend(gateway, created["id"]) - total) < 1e-9, timeout=10)


def test_an_aliases_reservation_covers_its_dearest_target(gateway: Gateway, emu: Emulator) -> None:
    # 100 output tokens and a few in: ~$0.0001 at the cheap price, ~$0.001 at the dear one.
    created = create_key(gateway, budget_usd=0.0005, budget_period="month")
    named = ask(gateway, created["key"], CHEAP)
    assert named.http_response.status_code == 200
    before = len(emu.requests())
    with pytest.raises(openai.APIStatusError) as refusal:
        ask(gateway, created["key"], "thrifty")
    assert refusal.value.status_code == 402
    assert refusal.value.response.json()["error"]["code"] == "budget_exceeded"
    assert len(emu.requests()) == before  # nothing went upstream


def test_an_alias_with_an_unpriced_target_is_refused_for_a_budgeted_key_only(
    gateway: Gateway, emu: Emulator
) -> None:
    created = create_key(gateway, budget_usd=100, budget_period="month")
    with pytest.raises(openai.BadRequestError) as refusal:
        ask(gateway, created["key"], "mystery")
    message = refusal.value.response.json()["error"]["message"]
    assert UNPRICED in message and "mystery" in message and "no known price" in message
    assert emu.requests() == []
    # A key without a budget is served (by the first target, priced).
    served = ask(gateway, CLIENT_KEY, "mystery")
    assert (served.http_response.status_code, served.headers["x-llm-model"]) == (200, CHEAP)


def test_an_answer_from_the_cache_costs_nothing(gateway: Gateway, emu: Emulator, database: str) -> None:
    created = create_key(gateway, budget_usd=100, budget_period="month")
    prompt = f"remember me {uuid.uuid4()}"
    miss = ask(gateway, created["key"], "remembered", prompt)
    hit = ask(gateway, created["key"], "remembered", prompt)
    assert (miss.headers["x-llm-cache"], hit.headers["x-llm-cache"]) == ("miss", "hit")
    assert hit.parse().usage.completion_tokens == miss.parse().usage.completion_tokens  # the same answer
    body = {"model": "remembered", "messages": [{"role": "user", "content": prompt}], "max_tokens": 100}
    with (
        httpx.Client(
            base_url=gateway.base_url, headers={"Authorization": f"Bearer {created['key']}"}
        ) as http,
        http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as streamed,
    ):
        assert streamed.headers["x-llm-cache"] == "hit"
        assert "[DONE]" in streamed.read().decode()
    assert len(emu.requests()) == 1

    request_ids = (r.headers["x-request-id"] for r in (miss, hit, streamed))
    paid, *replayed = rows_of(database, created["id"], *request_ids)
    assert paid["cost_usd"] == priced(paid, CHEAP) > 0 and paid["cache_hit"] is False
    assert [
        (row["cost_usd"], row["input_tokens"], row["output_tokens"], row["cache_hit"]) for row in replayed
    ] == [(Decimal(0), None, None, True)] * 2
    assert wait_until(
        lambda: abs(period_spend(gateway, created["id"]) - float(paid["cost_usd"])) < 1e-9, timeout=10
    )
