"""Helpers for the router's tests: a gateway file in code, a controllable clock, counting attempts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from llm_api.errors import UpstreamUnavailable
from llm_api.routing.config import GatewayConfig, parse_gateway_config
from llm_api.routing.executor import Target

ENV = {"ANTHROPIC_KEY_A": "sk-ant-a", "ANTHROPIC_KEY_B": "sk-ant-b", "OPENAI_API_KEY": "sk-openai"}

REFERENCE = """
deployments:
  - {name: claude-a, provider: anthropic, base_url: "http://anthropic-proxy.internal:8080", api_key_env: ANTHROPIC_KEY_A, models: ["claude-*"], weight: 3}
  - {name: claude-b, provider: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_KEY_B, models: ["claude-*"], weight: 1}
  - {name: openai, provider: openai, api_key_env: OPENAI_API_KEY, models: ["gpt-*", "o*"]}
  - {name: local, provider: openai-compatible, base_url: "http://vllm:8000/v1", models: ["llama-*"]}
models:
  smart: {strategy: fallback, targets: [claude-opus-4-5, gpt-4o]}
router:
  max_attempts_total: 6                                  # retries and fallbacks together, per request
  cooldown: {failures: 3, window_s: 30, cooldown_s: 30}  # per deployment; every failed attempt counts
"""  # noqa: E501 - the issue's reference file, verbatim


def config(text: str = REFERENCE, environ: Mapping[str, str] = ENV) -> GatewayConfig:
    return parse_gateway_config(text, path="gateway.yaml", environ=environ)


class Clock:
    """Wall-clock seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def overloaded(provider: str = "anthropic", retry_after_s: float | None = None) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"{provider} answered HTTP 529", provider=provider, upstream_status=529, retry_after_s=retry_after_s
    )


@dataclass
class Upstream:
    """A plain async callable as the executor's `attempt`: each deployment answers from a script.

    `script[deployment]` lists answers consumed one per call (the last one repeats): a string is a good
    answer, a callable makes the exception to raise (a new one per call, as a real adapter does).
    """

    script: dict[str, list[str | Callable[[], BaseException]]]
    calls: list[str] = field(default_factory=list)

    async def __call__(self, target: Target) -> str:
        name = target.deployment.name
        self.calls.append(name)
        answers = self.script.get(name, ["ok"])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(answer):
            raise answer()
        return f"{answer} from {name} ({target.model})"
