"""The response cache without a gateway file (issue 11: "CACHE_ENABLED=true turns it on for everyone"):
CACHE_ENABLED=true and REDIS_URL, no GATEWAY_CONFIG. The real gateway (gunicorn, 2 workers), the shared
Redis, the session emulator; the official SDKs as clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

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

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def gateway(emulator: Emulator) -> Iterator[Gateway]:
    env = gateway_env(
        emulator,
        CACHE_ENABLED="true",
        REDIS_URL=SHARED_REDIS,
        RATE_LIMIT_KEY_PREFIX=f"cache-no-router-{RUN}",
        ROUTER_KEY_PREFIX=f"cache-no-router-{RUN}",
    )
    with run_gateway(env) as gw:
        yield gw


def completions(gateway: Gateway, prompt: str, *, key: str = CLIENT_KEY, **headers: str) -> httpx.Response:
    with gateway.client(key) as client:
        return client.post(
            "/v1/chat/completions",
            headers=headers,
            json={
                "model": "gpt-4o-mini",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt}],
            },
        )


def text_of(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def test_the_same_request_is_answered_from_the_cache_for_the_same_key_only(
    gateway: Gateway, emu: Emulator
) -> None:
    prompt = f"cache me {uuid.uuid4()}"
    first = completions(gateway, prompt)
    assert (first.status_code, first.headers["x-llm-cache"]) == (200, "miss")
    second = completions(gateway, prompt)
    assert (second.status_code, second.headers["x-llm-cache"]) == (200, "hit")
    assert text_of(second) == text_of(first)
    assert second.json()["object"] == "chat.completion"
    assert len(emu.requests()) == 1
    other = completions(gateway, prompt, key=OTHER_CLIENT_KEY)
    assert other.headers["x-llm-cache"] == "miss"  # another key never sees this key's answer
    assert len(emu.requests()) == 2
    hit_line = wait_until(
        lambda: [r for r in gateway.log_records() if r.get("request_id") == second.headers["x-request-id"]]
    )
    assert hit_line[0]["cache_hit"] is True


def test_a_cached_answer_replays_as_a_stream_on_the_other_endpoint(gateway: Gateway, emu: Emulator) -> None:
    prompt = f"replay me {uuid.uuid4()}"
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0)
    stored = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": prompt}]
    )
    assert stored.headers["x-llm-cache"] == "miss"
    text = "".join(block.text for block in stored.parse().content if block.type == "text")
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        assert "".join(stream.text_stream) == text
        assert stream.get_final_message().stop_reason == "end_turn"
    assert len(emu.requests()) == 1
    # And a streamed answer is stored too: the JSON request after it is a hit.
    fresh = f"stream me first {uuid.uuid4()}"
    sdk = openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini", max_tokens=64, messages=[{"role": "user", "content": fresh}], stream=True
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    hit = completions(gateway, fresh)
    assert (hit.headers["x-llm-cache"], text_of(hit)) == ("hit", streamed)
    assert len(emu.requests()) == 2


def test_no_store_is_relayed_as_sent_and_never_stored(gateway: Gateway, emu: Emulator) -> None:
    prompt = f"keep me out {uuid.uuid4()}"
    with gateway.client() as client:
        response = client.post(
            "/v1/chat/completions",
            headers={"Cache-Control": "no-store"},
            json={
                "model": "gpt-4o-mini",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt}],
                "logit_bias": {"50256": -100},  # relayed untouched to its own vendor
            },
        )
    assert (response.status_code, response.headers["x-llm-cache"]) == (200, "miss")
    assert emu.requests()[-1]["body"]["logit_bias"] == {"50256": -100}
    assert completions(gateway, prompt).headers["x-llm-cache"] == "miss"
    assert len(emu.requests()) == 2


def test_a_request_its_neutral_form_would_change_is_relayed_as_sent_and_not_cached(
    gateway: Gateway, emu: Emulator
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "n": 2,
        "logprobs": True,
        "messages": [{"role": "user", "content": f"two answers {uuid.uuid4()}"}],
    }
    with gateway.client() as client:
        answers = [client.post("/v1/chat/completions", json=body) for _ in range(2)]
    assert [(a.status_code, a.headers["x-llm-cache"]) for a in answers] == [(200, "miss")] * 2
    assert all("x-llm-dropped-params" not in a.headers for a in answers)  # nothing was translated away
    sent = [r["body"] for r in emu.requests()]
    assert len(sent) == 2 and all(b["n"] == 2 and b["logprobs"] is True for b in sent)


def test_a_request_the_neutral_model_cannot_hold_is_relayed_to_its_own_vendor(
    gateway: Gateway, emu: Emulator
) -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [document, {"type": "text", "text": f"sum up {uuid.uuid4()}"}]}
        ],
    }
    with gateway.client() as client:
        response = client.post("/v1/messages", json=body)
    assert (response.status_code, response.headers["x-llm-cache"]) == (200, "miss"), response.text
    assert emu.requests()[-1]["body"]["messages"][0]["content"][0] == document  # relayed as sent
