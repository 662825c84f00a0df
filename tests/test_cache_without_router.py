"""CACHE_ENABLED=true without a gateway file: the response cache sits in the router, so it caches nothing
there. The gateway says so at start-up (once per worker) and serves every request upstream, unchanged."""

from __future__ import annotations

import uuid

from tests.support import Emulator, gateway_env, run_gateway, wait_until
from tests.test_ratelimit import SHARED_REDIS

WARNING = "CACHE_ENABLED=true caches nothing without GATEWAY_CONFIG"


def test_cache_enabled_without_a_gateway_file_warns_and_serves_every_request_upstream(emu: Emulator) -> None:
    env = gateway_env(
        emu,
        CACHE_ENABLED="true",
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=f"cache-no-router-{uuid.uuid4().hex[:8]}",
        LOG_LEVEL="INFO",
    )
    with run_gateway(env) as gateway:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "same question"}]}
        with gateway.client() as client:
            answers = [client.post("/v1/chat/completions", json=body) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert all("x-llm-cache" not in a.headers for a in answers)
        assert len(emu.requests()) == 2
        warnings = wait_until(
            lambda: (
                (found := [r for r in gateway.log_records() if WARNING in str(r.get("message"))])
                and len(found) == 2
                and found
            )
        )
        assert {r["level"] for r in warnings} == {"WARNING"}
