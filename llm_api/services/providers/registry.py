"""Builds the provider adapters from settings once per worker, and routes a model to its provider.

Without a gateway file: one adapter per vendor (`claude*` to Anthropic, the rest to OpenAI). With one
(GATEWAY_CONFIG): one adapter per deployment, with its own base URL, key and timeouts; the router picks
the deployment and `for_deployment` hands out its adapter.
"""

from __future__ import annotations

from llm_api.config import Settings
from llm_api.errors import ProviderNotConfigured
from llm_api.routing.config import GatewayConfig, ResolvedDeployment
from llm_api.services.providers import anthropic as anthropic_adapter
from llm_api.services.providers import openai as openai_adapter
from llm_api.services.providers.anthropic import AnthropicProvider
from llm_api.services.providers.base import Provider
from llm_api.services.providers.http_transport import HttpTransport
from llm_api.services.providers.openai import OpenAIProvider
from llm_api.services.providers.transport import Endpoint, Transport


def _transport(settings: Settings, endpoint: Endpoint) -> Transport:
    """The transport LLM_HTTP_CLIENT selects; the SDK one (and the SDKs) is imported only when selected."""
    if settings.llm_http_client == "sdk":
        from llm_api.services.providers import sdk_transport

        if endpoint.provider == anthropic_adapter.NAME:
            return sdk_transport.AnthropicSdkTransport(endpoint, max_connections=settings.llm_max_connections)
        return sdk_transport.OpenAISdkTransport(endpoint, max_connections=settings.llm_max_connections)
    vendor = anthropic_adapter if endpoint.provider == anthropic_adapter.NAME else openai_adapter
    return HttpTransport(
        endpoint,
        headers=vendor.direct_headers(endpoint.api_key),
        error_kind_of=vendor.error_kind_of,
        max_connections=settings.llm_max_connections,
    )


def _provider(settings: Settings, endpoint: Endpoint) -> Provider:
    transport = _transport(settings, endpoint)
    if endpoint.provider == anthropic_adapter.NAME:
        return AnthropicProvider(transport)
    return OpenAIProvider(transport)


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
        """One adapter per vendor whose key is set (ANTHROPIC_API_KEY, OPENAI_API_KEY)."""
        providers: dict[str, Provider] = {}
        for name, key, base_url in (
            (
                anthropic_adapter.NAME,
                settings.anthropic_api_key,
                settings.anthropic_base_url or anthropic_adapter.DEFAULT_BASE_URL,
            ),
            (
                openai_adapter.NAME,
                settings.openai_api_key,
                settings.openai_base_url or openai_adapter.DEFAULT_BASE_URL,
            ),
        ):
            if key is not None:
                endpoint = Endpoint(
                    provider=name,
                    base_url=base_url,
                    api_key=key.get_secret_value(),
                    timeout_s=settings.llm_timeout_s,
                    connect_timeout_s=settings.llm_connect_timeout_s,
                )
                providers[name] = _provider(settings, endpoint)
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
    endpoint = Endpoint(
        provider=anthropic_adapter.NAME if deployment.provider == "anthropic" else openai_adapter.NAME,
        base_url=deployment.base_url,
        api_key=deployment.api_key.get_secret_value() if deployment.api_key is not None else None,
        timeout_s=(timeouts.request_s if timeouts else None) or settings.llm_timeout_s,
        connect_timeout_s=(timeouts.connect_s if timeouts else None) or settings.llm_connect_timeout_s,
    )
    return _provider(settings, endpoint)
