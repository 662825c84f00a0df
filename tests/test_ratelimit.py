"""Rate limits: exact across workers, instances and restarts (real Redis, real gunicorn); Redis outages;
a slow Redis never stalls the event loop; the auth-failure limit per client address."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import pytest
import redis
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.testclient import TestClient

from llm_api.config import Settings
from llm_api.errors import RateLimitBackendUnavailable, RateLimited
from llm_api.security.keys import key_id
from llm_api.security.limit_rules import parse_limit, parse_overrides, storage_uri
from llm_api.security.ratelimit import RateLimiter
from llm_api.security.windows import RedisSlidingWindow
from tests.support import (
    CLIENT_KEY,
    OTHER_CLIENT_KEY,
    Emulator,
    Gateway,
    async_inside_one_window,
    async_wait_until,
    free_port,
    gateway_env,
    run_gateway,
    wait_until,
)

SHARED_REDIS = "redis://127.0.0.1:6379/0"
BODY = {"messages": [{"role": "user", "content": "hello"}]}


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


# --- Redis helpers: our own redis-server (never the shared one) and a proxy that delays replies -------


@contextmanager
def own_redis(port: int | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = port or free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=0.5)
    try:
        wait_until(client.ping, timeout=10)
        yield port, proc
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=5)


class DelayProxy:
    """TCP proxy to Redis that holds every reply for `delay_s` (a slow Redis, without touching Redis)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.holding = threading.Event()  # set while a reply is being held
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        try:
            while data := source.recv(65536):
                if delayed and self.delay_s:
                    self.holding.set()
                    time.sleep(self.delay_s)  # the behaviour under test, not synchronisation
                    self.holding.clear()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._server.close()


def scan_everything(client: redis.Redis) -> list[bytes]:
    """Every key and every value in the database."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"list":
            found.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"set":
            found.extend(client.smembers(key))
        elif kind == b"zset":
            found.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
    return found


def post_chat(base_url: str, key: str, *, stream: bool = False) -> httpx.Response:
    # A fresh connection per request, so the kernel spreads them over the workers.
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        return c.post("/v1/chat", json={**BODY, "stream": stream})


# --- parsing and start-up validation -----------------------------------------------------------------


def test_limit_strings_and_redis_urls_are_parsed() -> None:
    assert [str(i) for i in parse_limit("20/minute;500/day", setting="RATE_LIMIT")] == [
        "20 per 1 minute",
        "500 per 1 day",
    ]
    ident = key_id("some-key")
    assert parse_overrides([f"{ident}=100/minute"]) == {ident: "100/minute"}
    assert storage_uri("redis://:pw@h:6379/2") == "async+redis://:pw@h:6379/2"
    assert storage_uri("rediss://h") == "async+rediss://h"
    assert storage_uri("redis+sentinel://s1:26379,s2:26379/mymaster") == (
        "async+redis+sentinel://s1:26379,s2:26379/mymaster"
    )
    assert storage_uri("redis+cluster://n1:7000,n2:7001") == "async+redis+cluster://n1:7000,n2:7001"
    # The Sentinel and Cluster forms build limits' redis-py storages (nothing connects yet).
    for url in ("redis+sentinel://127.0.0.1:1/mymaster", "redis+cluster://127.0.0.1:1,127.0.0.1:2"):
        limiter = RateLimiter(
            default=parse_limit("1/minute", setting="x"), auth_failure=(), redis_uri=storage_uri(url)
        )
        assert limiter._redis is not None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RATE_LIMIT": "twenty a minute"}, "RATE_LIMIT"),
        ({"AUTH_FAILURE_LIMIT": "0/minute"}, "AUTH_FAILURE_LIMIT"),
        ({"RATE_LIMIT_OVERRIDES": "not-a-key-id=5/minute"}, "RATE_LIMIT_OVERRIDES"),
        ({"RATE_LIMIT_OVERRIDES": f"{key_id('k')}=lots"}, "RATE_LIMIT_OVERRIDES"),
        ({"REDIS_URL": "http://:secret-pw@127.0.0.1"}, "REDIS_URL"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("API_KEYS", "k")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message) as caught:
        Settings()
    assert "secret-pw" not in str(caught.value)


# --- the Redis window: one round trip, limits-compatible keys ----------------------------------------


async def test_one_round_trip_per_check_and_limits_reads_the_same_window() -> None:
    with own_redis() as (port, _):
        sync = redis.Redis(port=port)
        storage = RedisStorage(f"async+redis://127.0.0.1:{port}", implementation="redispy", key_prefix="t")
        window = RedisSlidingWindow(storage)
        item = parse("5/minute")
        await window.hit(item, "key", "warmup")  # loads the script (EVALSHA -> NOSCRIPT -> EVAL)
        sync.config_resetstat()
        states = [await window.hit(item, "key", "abc") for _ in range(7)]
        stats = sync.info("commandstats")
        calls = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
        assert calls == 7  # one round trip per check (limits' hit + get_window_stats would take 14)
        assert [s.allowed for s in states] == [True] * 5 + [False] * 2
        assert [s.remaining for s in states] == [4, 3, 2, 1, 0, 0, 0]
        assert 55 < states[0].reset_at - time.time() <= 60
        # limits' own strategy reads the window we wrote.
        stats_by_limits = await SlidingWindowCounterRateLimiter(storage).get_window_stats(item, "key", "abc")
        assert stats_by_limits.remaining == 0
        await storage.bridge.get_connection().aclose()
        sync.close()


# --- across workers, instances and restarts (one instance for the module, a second one later) ---------


@pytest.fixture(scope="module")
def limited_env(emulator: Emulator) -> dict[str, str]:
    return gateway_env(
        emulator,
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=unique_prefix(),
        RATE_LIMIT="6/minute",
        RATE_LIMIT_OVERRIDES=f"{key_id(OTHER_CLIENT_KEY)}=2/minute",
        AUTH_FAILURE_LIMIT="3/minute",
        FORWARDED_ALLOW_IPS="10.255.255.1",  # our loopback peer is NOT a trusted proxy
    )


@pytest.fixture(scope="module")
def limited(limited_env: dict[str, str]) -> Iterator[Gateway]:
    with run_gateway(limited_env) as gateway:  # 2 workers
        wait_until(lambda: gateway.output().count("Application startup complete") >= 2, timeout=30)
        yield gateway


def test_per_key_limit_is_exact_across_workers(limited: Gateway, emu: Emulator) -> None:
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda i: post_chat(limited.base_url, CLIENT_KEY, stream=i % 3 == 0), range(16))
        )
    assert sorted(r.status_code for r in responses) == [200] * 6 + [429] * 10  # streams count alike
    assert len(emu.requests()) == 6  # nothing refused reached the upstream
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == "6"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    allowed = [r for r in responses if r.status_code == 200]
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in allowed) == [0, 1, 2, 3, 4, 5]
    refused = [r for r in responses if r.status_code == 429]
    assert all(r.json()["error"]["type"] == "rate_limited" for r in refused)
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)
    assert {r.headers["X-RateLimit-Remaining"] for r in refused} == {"0"}
    # Another key is not affected; its override (2/minute) applies.
    assert [post_chat(limited.base_url, OTHER_CLIENT_KEY).status_code for _ in range(3)] == [200, 200, 429]

    # Both workers answered; a worker that served none of the 200s still refuses: the count is shared.
    def served_by() -> set[int]:
        return {r["pid"] for r in limited.log_records() if r.get("logger") == "llm_api.access"}

    for _ in range(40):
        if len(served_by()) == 2:
            break
        assert post_chat(limited.base_url, CLIENT_KEY).status_code == 429
    assert len(served_by()) == 2


def test_counters_survive_a_restart_and_are_shared_by_instances(
    limited: Gateway, limited_env: dict[str, str]
) -> None:
    for key, allowed in ((CLIENT_KEY, 6), (OTHER_CLIENT_KEY, 2)):
        while post_chat(limited.base_url, key).status_code == 200:
            allowed -= 1
        assert allowed >= 0
    # A fresh process (a restart, or another instance) sees the spent counters in Redis.
    with run_gateway({**limited_env, "WEB_CONCURRENCY": "1"}) as fresh:
        assert post_chat(fresh.base_url, CLIENT_KEY).status_code == 429
        assert post_chat(fresh.base_url, OTHER_CLIENT_KEY).status_code == 429


def test_no_raw_key_is_written_to_redis(limited: Gateway, limited_env: dict[str, str]) -> None:
    post_chat(limited.base_url, CLIENT_KEY)
    client = redis.Redis.from_url(SHARED_REDIS)
    stored = scan_everything(client)
    client.close()
    prefix = limited_env["RATE_LIMIT_KEY_PREFIX"].encode()
    assert any(prefix in item and key_id(CLIENT_KEY).encode() in item for item in stored)
    for secret in (CLIENT_KEY, OTHER_CLIENT_KEY, "wrong-key"):
        assert not any(secret.encode() in item for item in stored)


# --- authentication failures, limited per client address --------------------------------------------


def _unauthenticated(gateway: Gateway, forwarded_for: str | None = None) -> int:
    headers = {"Authorization": "Bearer wrong-key"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        return client.post("/v1/chat", json=BODY, headers=headers).status_code


def test_auth_failures_are_limited_per_client_and_spoofed_forwarding_is_ignored(
    limited: Gateway, emu: Emulator
) -> None:
    # A new X-Forwarded-For per request from an untrusted peer: still one bucket (the real peer).
    statuses = [_unauthenticated(limited, forwarded_for=f"203.0.113.{i}") for i in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    assert emu.requests() == []
    records = [r for r in limited.log_records() if r.get("logger") == "llm_api.access" and r["status"] == 429]
    assert any(r["error_type"] == "rate_limited" and r["key_id"] is None for r in records)


# --- Redis outages -----------------------------------------------------------------------------------


def test_redis_stopped_mid_run_falls_back_then_recovers(emu: Emulator) -> None:
    port = free_port()
    with own_redis(port) as (_, proc):
        env = gateway_env(emu, REDIS_URL=f"redis://127.0.0.1:{port}/0", RATE_LIMIT="1000/minute")
        with run_gateway(env) as gateway:
            assert post_chat(gateway.base_url, CLIENT_KEY).status_code == 200
            proc.terminate()
            proc.wait(timeout=5)
            outage = [post_chat(gateway.base_url, CLIENT_KEY) for _ in range(8)]
            assert {r.status_code for r in outage} == {200}
            assert all("X-RateLimit-Remaining" in r.headers for r in outage)
            # Still serving (fail-open), but readiness names the failing check.
            ready = httpx.get(f"{gateway.base_url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] == "unreachable"
            with own_redis(port):
                back = redis.Redis(port=port)
                # The probe runs every second: the shared counters are used again within a few seconds.
                wait_until(
                    lambda: post_chat(gateway.base_url, CLIENT_KEY).status_code == 200 and back.dbsize() > 0,
                    timeout=8,
                    interval=0.2,
                )
                wait_until(lambda: httpx.get(f"{gateway.base_url}/readyz").status_code == 200, timeout=5)
                # The worker that fell back logs its recovery when its probe next answers.
                wait_until(
                    lambda: any(
                        r["message"].startswith("rate-limit storage recovered") for r in gateway.log_records()
                    ),
                    timeout=5,
                )
                back.close()
            records = gateway.log_records()
    warnings = [r for r in records if r["message"].startswith("rate-limit storage unavailable")]
    assert warnings and len(warnings) == len({r["pid"] for r in warnings})  # once per worker per outage
    assert all(r["level"] == "WARNING" for r in warnings)
    assert any(r["message"].startswith("rate-limit storage recovered") for r in records)
    assert not [r for r in records if r.get("status") == 500]


def in_process_app(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> TestClient:
    """An isolated app with its own settings (llm_api.main also builds one from the environment on import)."""
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "true")
    from llm_api.main import create_app

    return TestClient(create_app(settings))


def test_fail_closed_answers_503_while_redis_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        api_keys=[CLIENT_KEY],
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_fail_closed=True,
        rate_limit_redis_timeout_s=0.1,
        otel_sdk_disabled=True,
    )
    with in_process_app(monkeypatch, settings) as client:
        response = client.post("/v1/chat", json=BODY, headers={"Authorization": f"Bearer {CLIENT_KEY}"})
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "rate_limit_unavailable"
        assert response.headers["Retry-After"] == "1"
        assert client.get("/readyz").status_code == 503


async def test_in_process_fallback_enforces_the_same_limit() -> None:
    await async_inside_one_window(5)  # the in-process count below must stay in one minute window
    limiter = RateLimiter(
        default=parse_limit("3/minute", setting="RATE_LIMIT"),
        auth_failure=parse_limit("3/minute", setting="AUTH_FAILURE_LIMIT"),
        redis_uri=f"async+redis://127.0.0.1:{free_port()}",
        redis_timeout_s=0.1,
    )
    try:
        for _ in range(3):
            await limiter.check_key("abc")
        assert limiter.degraded
        with pytest.raises(RateLimited):
            await limiter.check_key("abc")
        assert not await limiter.storage_ready()  # readiness names the outage; requests still served
    finally:
        await limiter.aclose()
    closed = RateLimiter(
        default=parse_limit("3/minute", setting="RATE_LIMIT"),
        auth_failure=(),
        redis_uri=f"async+redis://127.0.0.1:{free_port()}",
        redis_timeout_s=0.1,
        fail_closed=True,
    )
    try:
        with pytest.raises(RateLimitBackendUnavailable):
            await closed.check_key("abc")
        assert not await closed.storage_ready()
    finally:
        await closed.aclose()


# --- a slow Redis does not block the event loop ------------------------------------------------------


def test_slow_redis_does_not_stall_other_requests_on_the_worker(emu: Emulator) -> None:
    with own_redis() as (port, _):
        proxy = DelayProxy(port)
        env = gateway_env(
            emu,
            REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
            RATE_LIMIT_REDIS_TIMEOUT_S="5",
            WEB_CONCURRENCY="1",  # one worker: the slow check and the probe share an event loop
        )
        try:
            with run_gateway(env) as gateway:
                assert post_chat(gateway.base_url, CLIENT_KEY).status_code == 200  # connect + load script
                proxy.delay_s = 2.0
                result: dict[str, Any] = {}

                def slow() -> None:
                    started = time.monotonic()
                    result["status"] = post_chat(gateway.base_url, CLIENT_KEY).status_code
                    result["elapsed"] = time.monotonic() - started

                worker = threading.Thread(target=slow)
                worker.start()
                assert proxy.holding.wait(timeout=5)
                started = time.monotonic()
                assert httpx.get(f"{gateway.base_url}/healthz", timeout=5).status_code == 200
                assert time.monotonic() - started < 0.5  # answered while the rate-limit check waits
                worker.join(timeout=10)
                assert result["status"] == 200 and result["elapsed"] >= 1.5
        finally:
            proxy.close()


async def test_slow_redis_beyond_the_timeout_degrades_promptly() -> None:
    with own_redis() as (port, _):
        proxy = DelayProxy(port)
        proxy.delay_s = 3.0
        limiter = RateLimiter(
            default=parse_limit("3/minute", setting="RATE_LIMIT"),
            auth_failure=(),
            redis_uri=f"async+redis://127.0.0.1:{proxy.port}",
            redis_timeout_s=0.1,
        )
        try:
            started = time.monotonic()
            await limiter.check_key("abc")
            assert time.monotonic() - started < 1.0
            assert limiter.degraded
            proxy.delay_s = 0.0
            await async_wait_until(lambda: not limiter.degraded, timeout=10)
        finally:
            await limiter.aclose()
            proxy.close()
