"""Token and budget limits end to end: gunicorn with 2 workers, shared Redis, 256 concurrent connections.

Each request's worst case is known exactly (the estimate of "hello" plus max_tokens), and the emulator
holds every answer long enough that all admitted requests are in flight together: the number admitted is
then exactly what fits, whichever worker took which request.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from llm_api.security.keys import key_id
from llm_api.spend import estimate_texts_tokens
from tests.load import fire
from tests.support import (
    CLIENT_KEY,
    OTHER_CLIENT_KEY,
    Emulator,
    Gateway,
    gateway_env,
    run_gateway,
    wait_until,
)
from tests.test_ratelimit import SHARED_REDIS

MAX_TOKENS = 100
BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": MAX_TOKENS}
WORST = estimate_texts_tokens([("user", "hello")]) + MAX_TOKENS
FITS = 40
# $1 per MTok in and out for the default model: a worst case costs WORST micro-dollars.
FLAT_PRICES = '{"claude-opus-4-5": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}}'


def spend_env(emu: Emulator, **overrides: str) -> dict[str, str]:
    return gateway_env(
        emu,
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex[:10]}",
        RATE_LIMIT_REDIS_TIMEOUT_S="1",
        MODEL_PRICES=FLAT_PRICES,
        LLM_TIMEOUT_S="20",  # the emulator holds answers for a few seconds
        **overrides,
    )


@pytest.fixture(scope="module")
def small_room(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Room for one worst case at a time, and a budget: for the tests that need no load.

    A ledger of its own: the session's holds these keys' spend from earlier tests, which a budget's first
    request rebuilds from (the counters the tests read would then include it)."""
    database = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('small-room')}/ledger.db"
    env = spend_env(
        emulator,
        TOKEN_LIMIT=f"{WORST + WORST // 2}/minute",
        BUDGET_USD="1",
        BUDGET_PERIOD="day",
        DATABASE_URL=database,
    )
    with run_gateway(env) as gateway:
        yield gateway


def test_token_limit_admits_exactly_what_fits_under_256_concurrent_requests(emu: Emulator) -> None:
    emu.configure(first_token_delay_s=3.0)
    env = spend_env(emu, TOKEN_LIMIT=f"{WORST * FITS + WORST // 2}/minute")
    with run_gateway(env) as gateway:
        statuses, headers = fire(
            gateway.base_url,
            CLIENT_KEY,
            total=256,
            body=lambda _: BODY,
            keep=lambda r: (r.status_code, r.headers),
        )
        records = gateway.log_records()
    assert statuses == {200: FITS, 429: 256 - FITS}
    assert len(emu.requests()) == FITS  # nothing refused went upstream
    for status, h in headers:
        assert h["x-ratelimit-limit-tokens"] == str(WORST * FITS + WORST // 2)
        assert int(h["x-ratelimit-remaining-tokens"]) >= 0
        assert h["x-ratelimit-reset-tokens"].endswith("s")
        if status == 429:
            assert 1 <= int(h["Retry-After"]) <= 60
    assert not [r for r in records if "unavailable" in r.get("message", "")]


def test_budget_admits_exactly_what_fits_and_the_spend_never_passes_it(emu: Emulator, tmp_path: Path) -> None:
    emu.configure(first_token_delay_s=3.0)
    budget = Decimal(WORST * FITS + WORST // 2) / 1_000_000
    # A ledger of its own: the session's has this key's spend from earlier tests, which a budget's
    # first request rebuilds from.
    database = f"sqlite+aiosqlite:///{tmp_path}/ledger.db"
    env = spend_env(emu, BUDGET_USD=str(budget), BUDGET_PERIOD="day", DATABASE_URL=database)
    with run_gateway(env) as gateway:
        statuses, bodies = fire(
            gateway.base_url,
            CLIENT_KEY,
            total=256,
            body=lambda _: BODY,
            keep=lambda r: (r.status_code, r.json()),
        )
    assert statuses == {200: FITS, 402: 256 - FITS}
    assert len(emu.requests()) == FITS
    refused = [body for status, body in bodies if status == 402]
    assert {b["error"]["type"] for b in refused} == {"budget_exceeded"}
    # What Redis counts is what the admitted requests actually cost, and within the budget.
    actual = sum(
        Decimal(b["input_tokens"] + b["output_tokens"]) / 1_000_000 for status, b in bodies if status == 200
    )
    client = redis.Redis.from_url(SHARED_REDIS)
    [budget_key] = client.keys(f"{{{env['RATE_LIMIT_KEY_PREFIX']}:spend:{key_id(CLIENT_KEY)}}}:b:d*")
    spent = Decimal(int(client.hget(budget_key, "spent") or 0)) / 1_000_000_000
    client.close()
    assert spent == actual <= budget


def test_reservations_are_released_after_upstream_errors(small_room: Gateway, emu: Emulator) -> None:
    with httpx.Client(base_url=small_room.base_url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
        emu.fail({"status": 400, "message": "no"})  # not retried, not billed
        assert client.post("/v1/chat", json=BODY, headers=auth).status_code == 400
        emu.fail({"status": 400, "message": "no"})
        stream = client.post("/v1/chat", json={**BODY, "stream": True}, headers=auth)
        assert stream.status_code == 400
        # Both reservations were given back: a request that needs the whole room is admitted.
        ok = client.post("/v1/chat", json=BODY, headers=auth)
        assert ok.status_code == 200, ok.text
        # It was settled at its actual (small) usage, so another fits right away.
        assert client.post("/v1/chat", json=BODY, headers=auth).status_code == 200


def test_unknown_price_is_refused_for_a_budgeted_key_only(small_room: Gateway, emu: Emulator) -> None:
    with httpx.Client(base_url=small_room.base_url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
        refused = client.post("/v1/chat", json={**BODY, "model": "claude-unpriced-9"}, headers=auth)
        assert refused.status_code == 400
        assert refused.json()["error"]["type"] == "model_price_unknown"
        assert "claude-unpriced-9" in refused.json()["error"]["message"]
        assert emu.requests() == []


def _counters(prefix: str, key: str) -> tuple[int, int, int]:
    """(settled tokens this minute, tokens still held, nano-USD spent today) for `key`."""
    client = redis.Redis.from_url(SHARED_REDIS)
    tag = f"{{{prefix}:spend:{key_id(key)}}}"
    settled = int(client.hget(f"{tag}:tok", "60:cur") or 0)
    held = int(client.hget(f"{tag}:held", "#tokens") or 0)
    budgets = client.keys(f"{tag}:b:d*")
    spent = int(client.hget(budgets[0], "spent") or 0) if budgets else 0
    client.close()
    return settled, held, spent


def test_a_cancelled_stream_is_billed_for_what_was_relayed(small_room: Gateway, emu: Emulator) -> None:
    emu.configure(text=" ".join(["word"] * 100), chunks=100, chunk_delay_s=0.1)
    prefix = small_room.env["RATE_LIMIT_KEY_PREFIX"]
    # A key of its own: its counters are this stream's.
    with (
        small_room.client(OTHER_CLIENT_KEY) as client,
        client.stream("POST", "/v1/chat", json={**BODY, "stream": True}) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: {"):
                break
    wait_until(lambda: any(r["outcome"] == "client_disconnected" for r in emu.requests()), timeout=5)
    # Settled by estimate: the input and the relayed text, no longer held, billed at $1/MTok.
    settled, held, spent = wait_until(lambda: (c := _counters(prefix, OTHER_CLIENT_KEY))[0] and c, timeout=5)
    input_estimate = estimate_texts_tokens([("user", "hello")])
    assert held == 0
    assert input_estimate < settled < WORST
    assert spent == settled * 1000  # nano-USD at $1 per million tokens


def test_two_instances_share_the_token_limit_exactly(emu: Emulator) -> None:
    emu.configure(first_token_delay_s=3.0)
    # One worker each (the other tests cover workers): two processes that share nothing but Redis.
    env = spend_env(emu, TOKEN_LIMIT=f"{WORST * FITS + WORST // 2}/minute", WEB_CONCURRENCY="1")
    with run_gateway(env) as first, run_gateway(env) as second:
        results: list[Counter[int]] = []
        threads = [
            threading.Thread(
                target=lambda url: results.append(
                    fire(url, CLIENT_KEY, total=128, concurrency=128, body=lambda _: BODY)[0]
                ),
                args=(gateway.base_url,),
            )
            for gateway in (first, second)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    total = sum(results, Counter())
    assert total == {200: FITS, 429: 256 - FITS}
    assert len(emu.requests()) == FITS


def test_a_request_refused_by_the_rate_limit_holds_no_tokens(emu: Emulator) -> None:
    """The rate-limit hit travels with the reservation (one Redis round trip): a request the rate limit
    refuses must leave nothing reserved, and nothing goes upstream."""
    env = spend_env(emu, RATE_LIMIT="2/minute", TOKEN_LIMIT=f"{WORST * 10}/minute", BUDGET_USD="1")
    prefix = env["RATE_LIMIT_KEY_PREFIX"]
    with run_gateway(env) as gateway, gateway.client(CLIENT_KEY) as client:
        answered = [client.post("/v1/chat", json=BODY) for _ in range(2)]
        assert [r.status_code for r in answered] == [200, 200]
        upstream_calls = len(emu.requests())
        refused = client.post("/v1/chat", json=BODY)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["type"] == "rate_limited"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert len(emu.requests()) == upstream_calls
        used = sum(r.json()["input_tokens"] + r.json()["output_tokens"] for r in answered)
        settled, held, _ = _counters(prefix, CLIENT_KEY)
        assert (settled, held) == (used, 0)
