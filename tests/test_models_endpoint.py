"""GET /v1/models and /v1/models/{id}: OpenAI's shape, or Anthropic's with `anthropic-version`."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.compat import anthropic_client, openai_client
from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway


def test_openai_sdk_lists_the_routed_models(gateway: Gateway, emu: Emulator) -> None:
    models = list(openai_client(gateway).models.list())
    ids = [m.id for m in models]
    assert "gpt-4o" in ids and "claude-opus-4-5" in ids
    assert all(m.object == "model" and m.created > 0 for m in models)
    assert {m.owned_by for m in models} == {"openai", "anthropic"}
    assert openai_client(gateway).models.retrieve("gpt-4o").id == "gpt-4o"
    assert emu.requests() == []  # listing is local


def test_anthropic_sdk_gets_anthropics_shape_and_pages(gateway: Gateway, emu: Emulator) -> None:
    client = anthropic_client(gateway)
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more is True
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id
    every = [m.id for m in client.models.list(limit=1000).data]
    assert [m.id for m in client.models.list(limit=2, after_id=every[1]).data] == every[2:4]
    model = client.models.retrieve("claude-opus-4-5")
    assert model.type == "model" and model.display_name == "Claude Opus 4.5"
    assert model.created_at.year >= 2025


def test_claude_code_discovery_sees_claude_models(gateway: Gateway) -> None:
    with gateway.client() as client:
        body = client.get(
            "/v1/models", params={"limit": 1000}, headers={"anthropic-version": "2023-06-01"}
        ).json()
    claude = [m["id"] for m in body["data"] if "claude" in m["id"] or "anthropic" in m["id"]]
    assert "claude-opus-4-5" in claude and body["has_more"] is False


def test_unknown_model_is_a_404_in_each_format(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client(gateway).models.retrieve("no-such-model")
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client(gateway).models.retrieve("no-such-model")
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_models_need_a_key(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai_client(gateway, key="wrong-key").models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(gateway, key="wrong-key").models.list()


@pytest.fixture(scope="module")
def openai_only(emulator: Emulator) -> Iterator[Gateway]:
    env = gateway_env(
        emulator, ANTHROPIC_API_KEY="", MODELS="gpt-4o,claude-opus-4-5,my-model", WEB_CONCURRENCY="1"
    )
    with run_gateway(env) as gw:
        yield gw


def test_models_of_unconfigured_providers_are_not_listed(openai_only: Gateway) -> None:
    with openai_only.client(CLIENT_KEY) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["gpt-4o", "my-model"]
