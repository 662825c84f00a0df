"""Builds the provider adapters from settings once per worker, and routes a model to its provider.

Without a gateway file: one adapter per vendor (`claude*` to Anthropic, the rest to OpenAI). With one
(GATEWAY_CONFIG): one adapter per deployment, with its own base URL, key and timeouts; the router picks
the deployment and `for_deployment` hands out its adapter.
"""

from __future__ import annotations

import anthropic
import httpx2
import openai

from llm_api.config import Settings
from llm_api.errors import ProviderNotConfigured
from llm_api.routing.config import GatewayConfig, ResolvedDeployment
from llm_api.services.providers.anthropic import AnthropicProvider
from llm_api.services.providers.base import Provider
from llm_api.services.providers.openai import OpenAIProvider


def _http_client(
    settings: Settings,
    aiohttp_client: type[httpx2.AsyncClient],
    *,
    timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
) -> httpx2.AsyncClient:
    """The SDK's transport: aiohttp by default (less CPU per call than httpx2's own pool, measured in
    bench/sdk_overhead.py), with a pool large enough for thousands of concurrent streams per worker."""
    limits = httpx2.Limits(
        max_connections=settings.llm_max_connections,
        max_keepalive_connections=min(settings.llm_max_connections, 256),
        keepalive_expiry=30,
    )
    timeout = httpx2.Timeout(
        timeout_s or settings.llm_timeout_s, connect=connect_timeout_s or settings.llm_connect_timeout_s
    )
    client_class = aiohttp_client if settings.llm_http_client == "aiohttp" else httpx2.AsyncClient
    return client_class(limits=limits, timeout=timeout, follow_redirects=True)


def provider_name_for(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


class ProviderRegistry:
    """The configured adapters by name; a provider without a key is known but unavailable."""

    def __init__(
        self, providers: dict[str, Provider], *, deployments: dict[str, Provider] | None = None
    ) -> None:
        self._providers = providers
        self._deployments = deployments or {}

    @classmethod
    def from_gateway(cls, settings: Settings, gateway: GatewayConfig) -> ProviderRegistry:
        """One adapter per deployment of the gateway file (each with its own HTTP pool)."""
        return cls({}, deployments={d.name: _deployment_provider(settings, d) for d in gateway.deployments})

    def for_deployment(self, name: str) -> Provider:
        return self._deployments[name]

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        providers: dict[str, Provider] = {}
        if settings.anthropic_api_key is not None:
            providers["anthropic"] = AnthropicProvider(
                anthropic.AsyncAnthropic(
                    api_key=settings.anthropic_api_key.get_secret_value(),
                    base_url=settings.anthropic_base_url,
                    timeout=anthropic.Timeout(settings.llm_timeout_s, connect=settings.llm_connect_timeout_s),
                    max_retries=0,
                    http_client=_http_client(settings, anthropic.DefaultAioHttpClient),
                    # The SDK's own spans: off whatever ANTHROPIC_OPEN_TELEMETRY_* says (its "content" mode
                    # records messages); the gateway's GenAI span already covers every call.
                    open_telemetry=False,
                )
            )
        if settings.openai_api_key is not None:
            providers["openai"] = OpenAIProvider(
                openai.AsyncOpenAI(
                    api_key=settings.openai_api_key.get_secret_value(),
                    base_url=settings.openai_base_url,
                    timeout=openai.Timeout(settings.llm_timeout_s, connect=settings.llm_connect_timeout_s),
                    max_retries=0,
                    http_client=_http_client(settings, openai.DefaultAioHttpClient),
                )
            )
        return cls(providers)

    @property
    def configured(self) -> list[str]:
        return sorted(self._providers) or sorted(self._deployments)

    def for_model(self, model: str) -> Provider:
        name = provider_name_for(model)
        provider = self._providers.get(name)
        if provider is None:
            key = "ANTHROPIC_API_KEY" if name == "anthropic" else "OPENAI_API_KEY"
            raise ProviderNotConfigured(f"provider '{name}' is not configured on this gateway (set {key})")
        return provider

    async def aclose(self) -> None:
        for provider in [*self._providers.values(), *self._deployments.values()]:
            await provider.aclose()


def _deployment_provider(settings: Settings, deployment: ResolvedDeployment) -> Provider:
    timeouts = deployment.spec.timeouts
    request_s = (timeouts.request_s if timeouts else None) or settings.llm_timeout_s
    connect_s = (timeouts.connect_s if timeouts else None) or settings.llm_connect_timeout_s
    # openai-compatible servers often take no key; the SDK insists on one.
    api_key = deployment.api_key.get_secret_value() if deployment.api_key is not None else "none"
    if deployment.provider == "anthropic":
        return AnthropicProvider(
            anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=deployment.base_url,
                timeout=anthropic.Timeout(request_s, connect=connect_s),
                max_retries=0,
                http_client=_http_client(
                    settings, anthropic.DefaultAioHttpClient, timeout_s=request_s, connect_timeout_s=connect_s
                ),
                open_telemetry=False,
            )
        )
    return OpenAIProvider(
        openai.AsyncOpenAI(
            api_key=api_key,
            base_url=deployment.base_url,
            timeout=openai.Timeout(request_s, connect=connect_s),
            max_retries=0,
            http_client=_http_client(
                settings, openai.DefaultAioHttpClient, timeout_s=request_s, connect_timeout_s=connect_s
            ),
        )
    )
