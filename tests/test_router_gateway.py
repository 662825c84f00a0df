"""The router in the request path (issue 11): the real gateway (gunicorn, 2 workers) with a gateway file,
two emulators with scripted faults, upstream calls counted in the emulators.

claude-a (weight 10^6: nearly always drawn first) is on the second emulator, so its faults do not touch
claude-b, openai and the session emulator; `local` is an openai-compatible deployment served by the
second emulator's OpenAI API. The weighted draw itself is tested in test_routing_plan.py.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from tests.support import (
    CLIENT_KEY,
    OTHER_CLIENT_KEY,
    Emulator,
    Gateway,
    gateway_env,
    run_emulator,
    run_gateway,
    wait_until,
)

PREFIX = f"test-router-{uuid.uuid4().hex[:8]}"
COOLDOWN_S = 8  # long enough for a loaded machine to send its requests while it lasts


ADMIN_KEY = "router-test-admin-key-0001"


@pytest.fixture(scope="module")
def emu2() -> Iterator[Emulator]:
    with run_emulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def routed(emulator: Emulator, emu2: Emulator) -> Iterator[Gateway]:
    text = f"""
deployments:
  - {{name: claude-a, provider: anthropic, base_url: "{emu2.anthropic_url}", api_key_env: KEY_A,
      models: ["claude-*"], weight: 1000000}}
  - {{name: claude-b, provider: anthropic, base_url: "{emulator.anthropic_url}", api_key_env: KEY_B,
      models: ["claude-*"]}}
  - {{name: openai, provider: openai, base_url: "{emulator.openai_url}", api_key_env: OPENAI_KEY,
      models: ["gpt-*"]}}
  - {{name: local, provider: openai-compatible, base_url: "{emu2.openai_url}", models: ["llama-*"]}}
models:
  smart: {{strategy: fallback, targets: [claude-opus-4-5, gpt-4o]}}
  cached: {{targets: [claude-opus-4-5], cache: true}}
router:
  max_attempts_total: 5
  cooldown: {{failures: 3, window_s: 30, cooldown_s: {COOLDOWN_S}}}
"""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(text)
    env = gateway_env(
        emulator,
        GATEWAY_CONFIG=file.name,
        KEY_A="sk-ant-key-a",
        KEY_B="sk-ant-key-b",
        OPENAI_KEY="sk-openai-key",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ROUTER_KEY_PREFIX=PREFIX,
        RATE_LIMIT_KEY_PREFIX=f"{PREFIX}-rl",
        LLM_RETRY_ATTEMPTS="2",
        ADMIN_API_KEY=ADMIN_KEY,
    )
    try:
        with run_gateway(env, ready_timeout_s=180) as gateway:
            yield gateway
    finally:
        Path(file.name).unlink()
        _forget_breakers()


def _forget_breakers() -> None:
    """Delete this module's breaker keys (its own prefix only: the Redis is shared)."""
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        keys = list(client.scan_iter(match=f"{PREFIX}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def gw(routed: Gateway, emulator: Emulator, emu2: Emulator) -> Gateway:
    """The routed gateway with both emulators reset and every breaker closed."""
    emulator.reset()
    emu2.reset()
    _forget_breakers()
    return routed


def messages(gateway: Gateway, model: str = "claude-opus-4-5", **body: Any) -> httpx.Response:
    with gateway.client() as client:
        return client.post(
            "/v1/messages",
            json={"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **body},
        )


def served(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    headers = response.headers
    return headers.get("x-llm-model"), headers.get("x-llm-provider"), headers.get("x-llm-deployment")


def calls(emu: Emulator) -> int:
    return len(emu.requests())


def test_an_overloaded_claude_deployment_falls_back_to_the_second(
    gw: Gateway, emulator: Emulator, emu2: Emulator
) -> None:
    emu2.fail({"status": 529}, {"status": 529})
    response = messages(gw)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    assert served(response) == ("claude-opus-4-5", "anthropic", "claude-b")
    assert [r["status"] for r in emu2.requests()] == [529, 529]  # its retries, then the fallback
    assert calls(emulator) == 1
    line = next(r for r in gw.log_records() if r.get("message") == "request" and r.get("fallbacks"))
    assert [hop["deployment"] for hop in line["route"]] == ["claude-a", "claude-b"]
    assert line["route"][0]["outcome"] == "failed"


def test_an_alias_falls_back_from_claude_to_openai_in_the_clients_format(
    gw: Gateway, emulator: Emulator, emu2: Emulator
) -> None:
    emu2.fail({"status": 529}, {"status": 529})
    emulator.fail({"status": 503}, {"status": 503}, provider="anthropic")
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="smart", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    message = raw.parse()
    assert message.type == "message" and message.content[0].type == "text"
    assert (raw.headers["x-llm-model"], raw.headers["x-llm-provider"]) == ("gpt-4o", "openai")
    assert raw.headers["x-llm-deployment"] == "openai"
    upstream = [(r["provider"], r["status"]) for r in emulator.requests()]
    assert upstream.count(("anthropic", 503)) == 2
    assert upstream[-1][1] == 200
    assert len(emu2.requests()) == 2


def test_a_stream_falls_back_before_its_first_delta(gw: Gateway, emulator: Emulator, emu2: Emulator) -> None:
    emu2.fail({"status": 529}, {"status": 529})
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="smart", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as raw:
        assert raw.headers["x-llm-deployment"] == "claude-b"
        text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text
    assert len(emu2.requests()) == 2


def test_a_stream_that_failed_after_its_first_delta_does_not_fall_back(
    gw: Gateway, emulator: Emulator, emu2: Emulator
) -> None:
    emu2.fail({"fail_after_chunks": 1})
    with (
        gw.client() as client,
        client.stream(
            "POST",
            "/v1/messages",
            json={
                "model": "claude-opus-4-5",
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ) as response,
    ):
        body = response.read().decode()
    assert response.status_code == 200
    assert "event: error" in body
    assert calls(emulator) == 0  # nothing tried elsewhere once the client had text
    assert len(emu2.requests()) == 1


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_the_requests_own_errors_never_fall_back(
    gw: Gateway, emulator: Emulator, emu2: Emulator, status: int
) -> None:
    emu2.fail({"status": status})
    response = messages(gw, model="smart")
    assert 400 <= response.status_code < 500  # Anthropic's format answers 422 as 400
    assert response.json()["type"] == "error"
    assert len(emu2.requests()) == 1
    assert calls(emulator) == 0


def test_retries_and_fallbacks_share_one_attempt_budget(
    gw: Gateway, emulator: Emulator, emu2: Emulator
) -> None:
    emu2.fail(*[{"status": 529}] * 10)
    emulator.fail(*[{"status": 529}] * 10, provider="anthropic")
    emulator.fail(*[{"status": 500}] * 10, provider="openai")
    response = messages(gw, model="smart")
    assert response.status_code >= 500
    # max_attempts_total: 5 = claude-a 2 (LLM_RETRY_ATTEMPTS) + claude-b 2 + openai 1.
    assert len(emu2.requests()) + calls(emulator) == 5


def _worker_pids(gateway: Gateway, request_ids: set[str]) -> set[int]:
    return {
        r["pid"]
        for r in gateway.log_records()
        if r.get("message") == "request" and r.get("request_id") in request_ids
    }


def test_a_cooldown_is_shared_by_the_workers_and_closed_by_a_probe(
    gw: Gateway, emulator: Emulator, emu2: Emulator
) -> None:
    emu2.fail(*[{"status": 529}] * 3)
    for _ in range(2):  # 2 + 1 failures of claude-a: its breaker opens
        assert messages(gw).status_code == 200
    assert len(emu2.requests()) == 3
    answers: list[httpx.Response] = []

    def both_workers_answered() -> bool | None:
        answers.append(messages(gw))  # a new connection each: either worker may take it
        ids = {answer.headers["x-request-id"] for answer in answers}
        return len(_worker_pids(gw, ids)) == 2 or None

    wait_until(both_workers_answered, timeout=COOLDOWN_S / 2, interval=0)
    assert all(served(answer)[2] == "claude-b" for answer in answers)
    assert len(emu2.requests()) == 3  # skipped while cooling, by every worker
    states = {d["name"]: d for d in httpx.get(f"{gw.base_url}/readyz").json()["deployments"]}
    assert states["claude-a"]["state"] == "open"
    # After the cooldown one probe goes to claude-a; its success closes the breaker.
    wait_until(lambda: served(messages(gw))[2] == "claude-a" or None, timeout=COOLDOWN_S + 10, interval=0.2)
    assert [r["status"] for r in emu2.requests()][-1] == 200
    assert all(served(messages(gw))[2] == "claude-a" for _ in range(4))
    states = {d["name"]: d for d in httpx.get(f"{gw.base_url}/readyz").json()["deployments"]}
    assert states["claude-a"]["state"] == "closed"


def test_every_target_cooling_answers_503_with_retry_after_and_sends_nothing(
    gw: Gateway, emulator: Emulator, emu2: Emulator
) -> None:
    emu2.fail(*[{"status": 529}] * 3)
    emulator.fail(*[{"status": 529}] * 3, provider="anthropic")
    for _ in range(2):
        messages(gw)
    before = len(emu2.requests()) + calls(emulator)
    response = messages(gw)
    assert response.status_code == 503
    assert 1 <= int(response.headers["retry-after"]) <= COOLDOWN_S
    assert len(emu2.requests()) + calls(emulator) == before


def test_an_openai_compatible_deployment_on_another_port(gw: Gateway, emu2: Emulator) -> None:
    with gw.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"
    assert served(response) == ("llama-3.3-70b", "openai-compatible", "local")
    (record,) = emu2.requests()
    assert record["provider"] == "openai"
    translated = messages(gw, model="llama-3.3-70b")
    assert translated.status_code == 200, translated.text
    assert translated.json()["type"] == "message"


def test_models_lists_the_aliases_with_the_models(gw: Gateway) -> None:
    with gw.client() as client:
        listed = [m["id"] for m in client.get("/v1/models").json()["data"]]
        assert listed[0] == "smart"
        assert client.get("/v1/models/smart").status_code == 200
        unknown = client.post(
            "/v1/chat", json={"model": "mistral-large", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert unknown.status_code == 404


def test_the_route_never_shows_a_key(gw: Gateway) -> None:
    assert messages(gw).status_code == 200
    output = gw.output()
    for secret in ("sk-ant-key-a", "sk-ant-key-b", "sk-openai-key"):
        assert secret not in output
    ready = httpx.get(f"{gw.base_url}/readyz").text
    assert "sk-" not in ready
    assert json.loads(ready)["deployments"]


def ask(gateway: Gateway, prompt: str, *, key: str = CLIENT_KEY, **headers: str) -> httpx.Response:
    with gateway.client(key) as client:
        return client.post(
            "/v1/messages",
            headers=headers,
            json={"model": "cached", "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]},
        )


def text_of(response: httpx.Response) -> str:
    return "".join(block.get("text", "") for block in response.json()["content"])


def test_the_cache_answers_the_same_request_without_an_upstream_call(gw: Gateway, emu2: Emulator) -> None:
    prompt = f"cache me {uuid.uuid4()}"
    first = ask(gw, prompt)
    assert first.status_code == 200, first.text
    assert first.headers["x-llm-cache"] == "miss"
    second = ask(gw, prompt)
    assert second.headers["x-llm-cache"] == "hit"
    assert text_of(second) == text_of(first)
    assert served(second) == ("claude-opus-4-5", "anthropic", "claude-a")
    assert len(emu2.requests()) == 1
    # Another key never sees this key's answer.
    other = ask(gw, prompt, key=OTHER_CLIENT_KEY)
    assert other.headers["x-llm-cache"] == "miss"
    assert len(emu2.requests()) == 2
    hit_line = [r for r in gw.log_records() if r.get("request_id") == second.headers["x-request-id"]]
    assert hit_line and hit_line[0].get("input_tokens") is None and hit_line[0]["cache_hit"] is True
    miss_line = [r for r in gw.log_records() if r.get("request_id") == first.headers["x-request-id"]]
    assert miss_line and "cache_hit" not in miss_line[0]


def test_a_cached_answer_replays_as_a_real_stream_in_the_endpoints_format(
    gw: Gateway, emu2: Emulator
) -> None:
    prompt = f"replay me {uuid.uuid4()}"
    stored = ask(gw, prompt)
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="cached", max_tokens=64, messages=[{"role": "user", "content": prompt}], stream=True
    ) as raw:
        assert raw.headers["x-llm-cache"] == "hit"
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == text_of(stored)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    with anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0).messages.stream(
        model="cached", max_tokens=64, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        assert "".join(stream.text_stream) == text_of(stored)
    assert len(emu2.requests()) == 1


def test_no_cache_skips_the_lookup_and_no_store_neither_reads_nor_writes(gw: Gateway, emu2: Emulator) -> None:
    prompt = f"control me {uuid.uuid4()}"
    assert ask(gw, prompt).headers["x-llm-cache"] == "miss"
    fresh = ask(gw, prompt, **{"Cache-Control": "no-cache"})
    assert fresh.headers["x-llm-cache"] == "miss"
    assert len(emu2.requests()) == 2
    assert ask(gw, prompt, **{"Cache-Control": "no-store"}).headers["x-llm-cache"] == "miss"
    assert len(emu2.requests()) == 3
    unstored = f"never stored {uuid.uuid4()}"
    assert ask(gw, unstored, **{"Cache-Control": "no-store"}).status_code == 200
    assert ask(gw, unstored).headers["x-llm-cache"] == "miss"
    assert len(emu2.requests()) == 5


def test_a_request_its_neutral_form_would_change_is_relayed_as_sent_and_not_cached(
    gw: Gateway, emu2: Emulator
) -> None:
    prompt = f"top k {uuid.uuid4()}"
    with gw.client() as client:
        body = {
            "model": "cached",
            "max_tokens": 64,
            "top_k": 5,
            "messages": [{"role": "user", "content": prompt}],
        }
        answers = [client.post("/v1/messages", json=body) for _ in range(2)]
    assert [(a.status_code, a.headers["x-llm-cache"]) for a in answers] == [(200, "miss")] * 2
    sent = [r["body"] for r in emu2.requests()]
    assert len(sent) == 2 and all(b["top_k"] == 5 for b in sent)  # relayed as sent, to its own vendor


def test_a_request_the_neutral_model_cannot_hold_is_relayed_with_the_cache_on(
    gw: Gateway, emu2: Emulator
) -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
    content = [document, {"type": "text", "text": f"sum up {uuid.uuid4()}"}]
    with gw.client() as client:
        body = {"model": "cached", "max_tokens": 64, "messages": [{"role": "user", "content": content}]}
        response = client.post("/v1/messages", json=body)
    assert (response.status_code, response.headers["x-llm-cache"]) == (200, "miss"), response.text
    assert emu2.requests()[-1]["body"]["messages"][0]["content"][0] == document  # relayed as sent


def _stream(gateway: Gateway, prompt: str) -> httpx.Response:
    with (
        gateway.client() as client,
        client.stream(
            "POST",
            "/v1/messages",
            json={
                "model": "cached",
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": prompt}],
            },
        ) as response,
    ):
        response.read()
    return response


def test_failed_and_cancelled_streams_are_never_stored(gw: Gateway, emu2: Emulator) -> None:
    failed = f"fail me {uuid.uuid4()}"
    emu2.fail({"fail_after_chunks": 1})
    assert "event: error" in _stream(gw, failed).text
    assert ask(gw, failed).headers["x-llm-cache"] == "miss"

    cancelled = f"cancel me {uuid.uuid4()}"
    emu2.configure(chunk_delay_s=0.3)
    with (
        gw.client() as client,
        client.stream(
            "POST",
            "/v1/messages",
            json={
                "model": "cached",
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": cancelled}],
            },
        ) as response,
    ):
        next(response.iter_bytes())
    wait_until(lambda: emu2.requests()[-1]["outcome"] != "in_progress" or None, timeout=10)
    emu2.configure(chunk_delay_s=0)
    calls_before = len(emu2.requests())
    assert ask(gw, cancelled).headers["x-llm-cache"] == "miss"
    assert len(emu2.requests()) == calls_before + 1


def test_admin_deployments_and_cache_flush(gw: Gateway, emu2: Emulator) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    emu2.fail(*[{"status": 529}] * 3)
    for _ in range(2):  # claude-a fails 3 times: its breaker opens
        assert messages(gw).status_code == 200
    listing = httpx.get(f"{gw.base_url}/admin/deployments", headers=admin)
    assert listing.status_code == 200
    states = {d["name"]: d for d in listing.json()["data"]}
    assert set(states) == {"claude-a", "claude-b", "openai", "local"}
    assert states["claude-a"]["state"] == "open" and states["claude-b"]["state"] == "closed"
    assert "sk-ant-key-a" not in listing.text
    # A client key may not see it.
    assert (
        httpx.get(
            f"{gw.base_url}/admin/deployments", headers={"Authorization": f"Bearer {CLIENT_KEY}"}
        ).status_code
        == 403
    )
    _forget_breakers()
    prompt = f"flush me {uuid.uuid4()}"
    assert ask(gw, prompt).headers["x-llm-cache"] == "miss"
    assert ask(gw, prompt).headers["x-llm-cache"] == "hit"
    bad = httpx.delete(f"{gw.base_url}/admin/cache", params={"key_id": "not-a-key-id"}, headers=admin)
    assert 400 <= bad.status_code < 500
    flushed = httpx.delete(f"{gw.base_url}/admin/cache", headers=admin)
    assert flushed.status_code == 200 and flushed.json()["deleted"] >= 1
    assert ask(gw, prompt).headers["x-llm-cache"] == "miss"
