"""The executor against the real emulator: upstream calls counted there, errors classified from real HTTP.

The attempt here is a minimal HTTP call per provider (not the gateway's adapters, which issue 9 rewrites):
what matters is that the status codes the emulator sends become the errors the router acts on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from llm_api.errors import (
    UpstreamConnectionFailed,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from llm_api.routing.breaker import Breaker, BreakerPolicy
from llm_api.routing.budget import AttemptBudget
from llm_api.routing.chain import RouteChain
from llm_api.routing.config import GatewayConfig
from llm_api.routing.executor import Target, execute
from llm_api.routing.plan import Plan, TargetPlan
from tests.routing_support import config
from tests.support import Emulator, free_port
from tests.test_routing_executor import with_retries

ENV = {"KEY_A": "sk-ant-a", "KEY_B": "sk-ant-b", "OPENAI_KEY": "sk-openai", "LOCAL_KEY": "local"}


def gateway_file(emu: Emulator, *, dead_port: int) -> GatewayConfig:
    claude = f'provider: anthropic, base_url: "{emu.anthropic_url}", models: ["claude-*"]'
    openai = f'base_url: "{emu.openai_url}"'
    return config(
        f"""
deployments:
  - {{name: claude-a, {claude}, api_key_env: KEY_A}}
  - {{name: claude-b, {claude}, api_key_env: KEY_B}}
  - {{name: openai, provider: openai, {openai}, api_key_env: OPENAI_KEY, models: ["gpt-*"]}}
  - {{name: local, provider: openai-compatible, {openai}, api_key_env: LOCAL_KEY, models: ["llama-*"]}}
  - {{name: gone, provider: anthropic, base_url: "http://127.0.0.1:{dead_port}", api_key_env: KEY_A,
      models: ["claude-*"]}}
models:
  smart: {{strategy: fallback, targets: [claude-opus-4-5, gpt-4o]}}
""",
        environ=ENV,
    )


def plan_of(cfg: GatewayConfig, *targets: tuple[str, list[str]]) -> Plan:
    built = tuple(TargetPlan(model, tuple(cfg.deployment(d) for d in names)) for model, names in targets)
    return Plan(requested=targets[0][0], alias=None, targets=built)


class Caller:
    """One chat call per attempt, to whichever API the target's deployment speaks."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.sent: list[str] = []

    async def __call__(self, target: Target) -> str:
        deployment = target.deployment
        key = deployment.api_key.get_secret_value() if deployment.api_key else ""
        messages = [{"role": "user", "content": "Say hello"}]
        self.sent.append(deployment.name)
        try:
            if deployment.provider == "anthropic":
                response = await self.http.post(
                    f"{deployment.base_url}/v1/messages",
                    headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                    json={"model": target.model, "max_tokens": 32, "messages": messages},
                )
            else:
                response = await self.http.post(
                    f"{deployment.base_url}/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": target.model, "messages": messages},
                )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("timed out", provider=deployment.provider) from exc
        except httpx.TransportError as exc:
            raise UpstreamConnectionFailed("connection failed", provider=deployment.provider) from exc
        if response.status_code != 200:
            retry_after = response.headers.get("retry-after")
            raise upstream_error_for_status(
                response.status_code,
                provider=deployment.provider,
                retry_after_s=float(retry_after) if retry_after else None,
            )
        body = response.json()
        return str(body["model"])

    async def retried(self, target: Target) -> str:
        return await with_retries(lambda: self(target), attempts=4, budget=target.budget)


@pytest.fixture
async def caller() -> AsyncIterator[Caller]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield Caller(http)


def providers(emu: Emulator) -> list[str]:
    return [record["provider"] for record in emu.requests()]


async def test_an_overloaded_claude_deployment_falls_back_to_the_second(
    emu: Emulator, caller: Caller
) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    emu.fail({"status": 529}, provider="anthropic")
    chain = RouteChain()
    plan = plan_of(cfg, ("claude-opus-4-5", ["claude-a", "claude-b"]))
    await execute(plan, caller, budget=AttemptBudget(6), breaker=Breaker(BreakerPolicy()), chain=chain)
    assert caller.sent == ["claude-a", "claude-b"]
    assert providers(emu) == ["anthropic", "anthropic"]
    assert [(h.deployment, h.outcome, h.error_type) for h in chain.hops] == [
        ("claude-a", "failed", "upstream_unavailable"),
        ("claude-b", "ok", None),
    ]


async def test_and_then_to_an_openai_model(emu: Emulator, caller: Caller) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    emu.fail({"status": 529}, {"status": 503}, provider="anthropic")
    plan = plan_of(cfg, ("claude-opus-4-5", ["claude-a", "claude-b"]), ("gpt-4o", ["openai"]))
    served = await execute(plan, caller, budget=AttemptBudget(6), breaker=Breaker(BreakerPolicy()))
    assert served == "gpt-4o"
    assert providers(emu) == ["anthropic", "anthropic", "openai"]


async def test_a_refused_connection_falls_back(emu: Emulator, caller: Caller) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    plan = plan_of(cfg, ("claude-opus-4-5", ["gone", "claude-b"]))
    await execute(plan, caller, budget=AttemptBudget(6), breaker=Breaker(BreakerPolicy()))
    assert caller.sent == ["gone", "claude-b"]
    assert providers(emu) == ["anthropic"]


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_no_fallback_on_the_requests_own_errors(emu: Emulator, caller: Caller, status: int) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    emu.fail({"status": status}, provider="anthropic")
    plan = plan_of(cfg, ("claude-opus-4-5", ["claude-a", "claude-b"]), ("gpt-4o", ["openai"]))
    with pytest.raises(UpstreamRejected) as caught:
        await execute(plan, caller.retried, budget=AttemptBudget(6), breaker=Breaker(BreakerPolicy()))
    assert caught.value.status_code == status
    assert providers(emu) == ["anthropic"]


async def test_retries_and_fallbacks_share_one_budget(emu: Emulator, caller: Caller) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    emu.fail(*[{"status": 529, "provider": "anthropic"} for _ in range(10)])
    emu.fail(*[{"status": 503, "provider": "openai"} for _ in range(10)])
    plan = plan_of(cfg, ("claude-opus-4-5", ["claude-a", "claude-b"]), ("gpt-4o", ["openai"]))
    with pytest.raises(UpstreamError):
        await execute(
            plan, caller.retried, budget=AttemptBudget(6), breaker=Breaker(BreakerPolicy(failures=100))
        )
    assert len(emu.requests()) == 6


async def test_cooled_deployments_get_nothing_and_the_client_gets_503(emu: Emulator, caller: Caller) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    emu.fail(*[{"status": 529, "provider": "anthropic"} for _ in range(4)])
    breaker = Breaker(BreakerPolicy(failures=2, cooldown_s=30))
    plan = plan_of(cfg, ("claude-opus-4-5", ["claude-a", "claude-b"]))
    with pytest.raises(UpstreamUnavailable):
        await execute(plan, caller.retried, budget=AttemptBudget(6), breaker=breaker)
    assert len(emu.requests()) == 4  # two per deployment: the second failure opened each breaker
    with pytest.raises(UpstreamUnavailable) as caught:
        await execute(plan, caller.retried, budget=AttemptBudget(6), breaker=breaker)
    assert caught.value.headers["Retry-After"] in {"29", "30"}
    assert len(emu.requests()) == 4


async def test_an_openai_compatible_deployment(emu: Emulator, caller: Caller) -> None:
    cfg = gateway_file(emu, dead_port=free_port())
    plan = plan_of(cfg, ("llama-3.3-70b", ["local"]))
    assert (
        await execute(plan, caller, budget=AttemptBudget(6), breaker=Breaker(BreakerPolicy()))
        == "llama-3.3-70b"
    )
    assert providers(emu) == ["openai"]
