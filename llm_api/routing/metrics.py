"""The router's metric instruments (created once per worker from that worker's meter provider).

    llm_api.router.requests          counter  {request}   llm_api.router.deployment, gen_ai.request.model,
                                                          llm_api.router.outcome (ok, failed, rejected, ...)
    llm_api.router.fallbacks         counter  {fallback}  llm_api.router.from_deployment / to_deployment,
                                                          llm_api.router.from_model / to_model
    llm_api.router.cooldowns_opened  counter  {cooldown}  llm_api.router.deployment
    llm_api.router.unavailable       counter  {request}   refused with 503: every target was cooling down

Every label comes from the gateway file (deployment and model names), never from a request's content.
"""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider

REQUESTS = "llm_api.router.requests"
FALLBACKS = "llm_api.router.fallbacks"
COOLDOWNS_OPENED = "llm_api.router.cooldowns_opened"
UNAVAILABLE = "llm_api.router.unavailable"


class RouterMetrics:
    def __init__(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("llm_api.routing")
        self._requests = meter.create_counter(
            REQUESTS, unit="{request}", description="Calls the router sent to a deployment, by outcome."
        )
        self._fallbacks = meter.create_counter(
            FALLBACKS, unit="{fallback}", description="Requests passed from one deployment to the next."
        )
        self._cooldowns = meter.create_counter(
            COOLDOWNS_OPENED, unit="{cooldown}", description="Deployment breakers opened (or re-opened)."
        )
        self._unavailable = meter.create_counter(
            UNAVAILABLE, unit="{request}", description="Requests refused because every target cooled down."
        )

    def record_request(self, *, deployment: str, model: str, outcome: str) -> None:
        self._requests.add(
            1,
            attributes={
                "llm_api.router.deployment": deployment,
                "gen_ai.request.model": model,
                "llm_api.router.outcome": outcome,
            },
        )

    def record_fallback(
        self, *, from_deployment: str, from_model: str, to_deployment: str, to_model: str
    ) -> None:
        self._fallbacks.add(
            1,
            attributes={
                "llm_api.router.from_deployment": from_deployment,
                "llm_api.router.from_model": from_model,
                "llm_api.router.to_deployment": to_deployment,
                "llm_api.router.to_model": to_model,
            },
        )

    def record_cooldown_opened(self, *, deployment: str) -> None:
        self._cooldowns.add(1, attributes={"llm_api.router.deployment": deployment})

    def record_unavailable(self) -> None:
        self._unavailable.add(1)
