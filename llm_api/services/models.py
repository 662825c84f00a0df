"""The models the gateway lists at `GET /v1/models`: the MODELS setting, filtered to the providers that
are configured. Listing is local (no upstream call): these are the names the gateway routes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llm_api.errors import NotFound
from llm_api.routing.config import GatewayConfig
from llm_api.services.providers.registry import provider_name_for

# A fixed date: the gateway does not know when a vendor released a model, and a listing that changed
# on every restart would look like new models to a client that caches it.
LISTED_SINCE = 1_735_689_600  # 2025-01-01T00:00:00Z
LISTED_SINCE_ISO = "2025-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class ListedModel:
    id: str
    provider: str
    display_name: str


@dataclass(frozen=True, slots=True)
class ModelPage:
    models: tuple[ListedModel, ...]
    has_more: bool


def display_name(model: str) -> str:
    """`claude-opus-4-5` -> `Claude Opus 4.5`; other ids are shown as they are."""
    if not model.startswith("claude-"):
        return model
    words: list[str] = []
    for part in model.split("-"):
        if part.isdigit() and words and words[-1][-1].isdigit() and len(part) < 3:
            words[-1] = f"{words[-1]}.{part}"
        elif part.isdigit() and len(part) >= 8:
            continue  # a date suffix
        else:
            words.append(part if part.isdigit() else part.capitalize())
    return " ".join(words)


class ModelCatalog:
    def __init__(self, models: Iterable[str], *, configured_providers: Iterable[str]) -> None:
        configured = set(configured_providers)
        seen: dict[str, ListedModel] = {}
        for model in models:
            provider = provider_name_for(model)
            if provider in configured and model not in seen:
                seen[model] = ListedModel(model, provider, display_name(model))
        self._models: tuple[ListedModel, ...] = tuple(seen.values())
        self._by_id = seen

    @classmethod
    def from_gateway(cls, gateway: GatewayConfig) -> ModelCatalog:
        """The gateway file's aliases (owned by "llm-api"), then every model its deployments name."""
        catalog = cls((), configured_providers=())
        listed: dict[str, ListedModel] = {}
        for name in gateway.listed_models():
            if name in gateway.aliases:
                listed[name] = ListedModel(name, "llm-api", name)
            else:
                served = gateway.serving(name)
                provider = served[0].provider if served else provider_name_for(name)
                listed[name] = ListedModel(name, provider, display_name(name))
        catalog._models = tuple(listed.values())
        catalog._by_id = listed
        return catalog

    def get(self, model: str) -> ListedModel:
        found = self._by_id.get(model)
        if found is None:
            raise NotFound(f"model '{model}' is not served by this gateway")
        return found

    def page(
        self, *, limit: int | None = None, after_id: str | None = None, before_id: str | None = None
    ) -> ModelPage:
        """Anthropic's paging: `limit` models after `after_id` (or those before `before_id`)."""
        models: Sequence[ListedModel] = self._models
        ids = [m.id for m in models]
        if after_id is not None:
            models = models[ids.index(after_id) + 1 :] if after_id in ids else ()
        elif before_id is not None:
            models = models[: ids.index(before_id)] if before_id in ids else ()
        if limit is None or len(models) <= limit:
            return ModelPage(tuple(models), has_more=False)
        if before_id is not None:
            return ModelPage(tuple(models[-limit:]), has_more=True)
        return ModelPage(tuple(models[:limit]), has_more=True)
