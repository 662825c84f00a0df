"""A managed key's budget end to end (gunicorn, 2 workers, our own redis-server, a SQLite ledger): requests
are admitted until the budget would be passed, then 402; the ledger's cost adds up to what Redis counted
and stays within the budget; after a Redis flush the spend is rebuilt from the ledger, so the key stays
refused; the admin API's live usage reports the same spend."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis

from llm_api.store.store import Store
from tests.support import Emulator, gateway_env, run_gateway, wait_until
from tests.test_ratelimit import own_redis

ADMIN_KEY = f"admin-{uuid.uuid4().hex[:8]}"
# $0.01 per token in and out: costs are large enough to read, small enough to add exactly.
PRICES = '{"claude-opus-4-5": {"input_usd_per_mtok": 10000, "output_usd_per_mtok": 10000}}'
BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}


def _ledger_rows(url: str, key_id: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store = await Store.open(url, migrate=False)
        try:
            return await store.ledger.rows(key_id=key_id)
        finally:
            await store.aclose()

    return asyncio.run(read())


def test_a_managed_budget_holds_and_survives_a_redis_flush(emu: Emulator, tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path}/ledger.db"
    with own_redis() as (port, _):
        env = gateway_env(
            emu,
            ADMIN_API_KEY=ADMIN_KEY,
            DATABASE_URL=database,
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            RATE_LIMIT_KEY_PREFIX=f"budget-{uuid.uuid4().hex[:8]}",
            MODEL_PRICES=PRICES,
        )
        with run_gateway(env) as gateway:
            with gateway.client(key=ADMIN_KEY) as admin:
                created = admin.post(
                    "/admin/keys", json={"name": "budgeted", "budget_usd": 0.5, "budget_period": "day"}
                ).json()
            statuses = []
            with gateway.client(key=created["key"]) as client:
                for _ in range(30):
                    statuses.append(client.post("/v1/chat", json=BODY).status_code)
                    if statuses[-1] == 402:
                        break
                refused = client.post("/v1/chat", json=BODY)
            admitted = statuses.count(200)
            assert admitted >= 2 and statuses == [200] * admitted + [402], statuses
            assert refused.status_code == 402 and refused.json()["error"]["type"] == "budget_exceeded"

            rows = wait_until(
                lambda: (
                    (found := _ledger_rows(database, created["id"])) and len(found) == admitted + 2 and found
                ),
                timeout=5,
            )
            ok = [row for row in rows if row["status"] == 200]
            spent = sum((row["cost_usd"] for row in ok), Decimal(0))
            assert len(ok) == admitted and all(row["cost_usd"] > 0 for row in ok)
            assert {row["error_type"] for row in rows if row["status"] == 402} == {"budget_exceeded"}
            assert 0 < spent <= Decimal("0.5")

            with gateway.client(key=ADMIN_KEY) as admin:
                detail = admin.get(f"/admin/keys/{created['id']}").json()
                report = admin.get("/admin/usage", params={"key_id": created["id"]}).json()["data"]
            assert Decimal(str(detail["usage"]["period_spend_usd"])) == spent
            assert Decimal(str(report[0]["cost_usd"])) == spent and report[0]["errors"] == 2

            own = redis.Redis(port=port)
            own.flushall()  # our own server: the budget's counters are gone
            own.close()
            with gateway.client(key=created["key"]) as client:
                after_flush = client.post("/v1/chat", json=BODY)
            assert after_flush.status_code == 402, after_flush.text  # rebuilt from the ledger, still spent
            with httpx.Client(base_url=gateway.base_url, timeout=10) as plain:
                assert plain.get("/healthz").status_code == 200
            assert "budget spend rebuilt from the ledger" in gateway.output()
