"""Two gateway instances (gunicorn, 2 workers each) sharing one PostgreSQL database and Redis: a key change
made on one instance, or by the CLI on the database directly, is in force on every worker of both within
1 s; the CLI's key lifecycle; and a database outage that fails no request, its rows written afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from llm_api.security.keys import key_id
from llm_api.store.store import Store
from tests.pg import admin_sql, postgres_database, terminate
from tests.support import CLIENT_KEY, ROOT, Emulator, Gateway, gateway_env, run_gateway, wait_until

RUN = uuid.uuid4().hex[:8]
ADMIN_KEY = f"admin-{RUN}"
PREFIX = f"shared-{RUN}"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def database() -> Iterator[tuple[str, str]]:
    with postgres_database() as found:
        yield found


@pytest.fixture(scope="module")
def instances(emulator: Emulator, database: tuple[str, str]) -> Iterator[tuple[Gateway, Gateway]]:
    env = gateway_env(
        emulator,
        ADMIN_API_KEY=ADMIN_KEY,
        DATABASE_URL=database[0],
        REDIS_URL=REDIS_URL,
        RATE_LIMIT_KEY_PREFIX=PREFIX,
        MANAGED_KEY_CACHE_TTL_S="300",  # only the invalidation can make a change visible within 1 s
    )
    with ExitStack() as stack:
        first = stack.enter_context(run_gateway(env))
        second = stack.enter_context(run_gateway(env))
        yield first, second


def chat(gateway: Gateway, key: str) -> int:
    with gateway.client(key=key) as client:
        return client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hi"}]}).status_code


def everywhere(instances: tuple[Gateway, Gateway], key: str, per_instance: int = 6) -> set[int]:
    """Statuses of requests on fresh connections to both instances (and so to their four workers)."""
    return {chat(gateway, key) for gateway in instances for _ in range(per_instance)}


def cli(database_url: str, *args: str, redis: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "RATE_LIMIT", "DATABASE_"))}
    env.update({"DATABASE_URL": database_url, "RATE_LIMIT_KEY_PREFIX": PREFIX})
    if redis:
        env["REDIS_URL"] = REDIS_URL
    return subprocess.run(
        [sys.executable, "-m", "llm_api.admin", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def within_one_second(check: Any) -> None:
    """`check()` holds in a probe that started less than 1 s after the change (a probe takes time)."""
    changed = time.monotonic()
    while (probe_started := time.monotonic()) - changed < 1.0:
        if check():
            return
    raise AssertionError(
        f"not in force 1 s after the change (last probe began at +{probe_started - changed:.3f} s)"
    )


def test_changes_through_the_admin_api_reach_every_worker_of_both_instances(
    instances: tuple[Gateway, Gateway], emu: Emulator
) -> None:
    first, second = instances
    with first.client(key=ADMIN_KEY) as admin:
        created = admin.post("/admin/keys", json={"name": "shared"}).json()
    secret = created["key"]
    assert everywhere(instances, secret) == {200}  # every worker has it cached now

    with second.client(key=ADMIN_KEY) as admin:
        assert admin.patch(f"/admin/keys/{created['id']}", json={"models": ["gpt-*"]}).status_code == 200
    within_one_second(lambda: everywhere(instances, secret, 3) == {403})

    with first.client(key=ADMIN_KEY) as admin:
        rotated = admin.post(f"/admin/keys/{created['id']}/rotate", json={"grace_s": 0}).json()
        assert admin.patch(f"/admin/keys/{created['id']}", json={"models": None}).status_code == 200
    within_one_second(lambda: everywhere(instances, secret, 3) == {401})
    assert everywhere(instances, rotated["key"]) == {200}

    with second.client(key=ADMIN_KEY) as admin:
        assert admin.delete(f"/admin/keys/{created['id']}").status_code == 204
    within_one_second(lambda: everywhere(instances, rotated["key"], 3) == {401})
    assert everywhere(instances, rotated["key"]) == {401}


def test_cli_key_lifecycle_on_the_shared_database(
    instances: tuple[Gateway, Gateway], database: tuple[str, str], emu: Emulator
) -> None:
    url = database[0]
    assert json.loads(cli(url, "migrate").stdout) == {"migrated": False}  # the gateways did it
    made = cli(
        url,
        "keys",
        "create",
        "--name",
        "ops",
        "--rpm",
        "50",
        "--tpm",
        "9000",
        "--budget-usd",
        "7.25",
        "--budget-period",
        "day",
        "--models",
        "claude-*, gpt-4o",
        "--expires-at",
        "2999-01-01T00:00:00Z",
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["key"].startswith("sk-llm-") and "shown only this once" in made.stderr
    assert (created["rpm_limit"], created["tpm_limit"], created["budget_usd"], created["budget_period"]) == (
        50,
        9000,
        7.25,
        "day",
    )
    assert created["models"] == ["claude-*", "gpt-4o"] and created["expires_at"] == "2999-01-01T00:00:00Z"
    within_one_second(lambda: everywhere(instances, created["key"], 3) == {200})

    listed = cli(url, "keys", "list")
    assert created["id"] in listed.stdout and created["key"] not in listed.stdout
    shown = cli(url, "keys", "show", created["id"])
    assert shown.returncode == 0 and created["key"] not in shown.stdout
    assert set(json.loads(shown.stdout)["usage"]) == {"period_spend_usd", "minute_tokens", "minute_requests"}

    updated = cli(url, "keys", "update", created["id"], "--models", "gpt-*", "--rpm", "none")
    assert updated.returncode == 0, updated.stderr
    assert (
        json.loads(updated.stdout)["models"] == ["gpt-*"] and json.loads(updated.stdout)["rpm_limit"] is None
    )
    within_one_second(lambda: everywhere(instances, created["key"], 3) == {403})

    rotated = cli(url, "keys", "rotate", created["id"], "--grace-s", "120")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = json.loads(rotated.stdout)["key"]
    assert json.loads(rotated.stdout)["id"] == created["id"] and new_secret != created["key"]
    assert cli(url, "keys", "update", created["id"], "--models", "none").returncode == 0
    within_one_second(lambda: everywhere(instances, new_secret, 3) == {200})
    assert everywhere(instances, created["key"], 3) == {200}  # inside its grace period

    assert cli(url, "keys", "revoke", created["id"]).returncode == 0
    within_one_second(
        lambda: everywhere(instances, new_secret, 2) | everywhere(instances, created["key"], 2) == {401}
    )

    missing = cli(url, "keys", "show", "key_nope")
    assert missing.returncode == 1 and "key_nope" in missing.stderr
    bad = cli(url, "keys", "create", "--name", "x", "--budget-period", "year")
    assert bad.returncode == 2 and "budget_period" in bad.stderr
    for output in (made, listed, shown, updated, rotated, missing, bad):
        assert ADMIN_KEY not in output.stdout + output.stderr


def _ledger_count(url: str, **where: Any) -> int:
    async def count() -> int:
        store = await Store.open(url, migrate=False)
        try:
            return await store.ledger.count(**where)
        finally:
            await store.aclose()

    return asyncio.run(count())


def test_a_database_outage_fails_no_request(
    instances: tuple[Gateway, Gateway], database: tuple[str, str], emu: Emulator
) -> None:
    url, name = database
    gateway = instances[0]
    static_id = key_id(CLIENT_KEY)
    before = _ledger_count(url, key_id=static_id)
    admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    terminate(name)
    try:
        request_ids = []
        started = time.monotonic()
        with gateway.client() as client:
            for index in range(12):
                response = client.post(
                    "/v1/chat",
                    json={"stream": index % 2 == 1, "messages": [{"role": "user", "content": "hi"}]},
                )
                assert response.status_code == 200, response.text
                request_ids.append(response.headers["x-request-id"])
        assert time.monotonic() - started < 10
        wait_until(lambda: "usage ledger: database write failed" in gateway.output(), timeout=10)
    finally:
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    wait_until(lambda: _ledger_count(url, key_id=static_id) == before + 12, timeout=20, interval=0.2)
    assert all(_ledger_count(url, request_id=rid) == 1 for rid in request_ids)
    wait_until(lambda: "usage ledger: database writes recovered" in gateway.output(), timeout=10)
    failures = [
        r
        for r in gateway.log_records()
        if r.get("message", "").startswith("usage ledger: database write failed")
    ]
    assert 1 <= len(failures) <= 2  # once per outage, per worker
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
