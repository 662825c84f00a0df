"""`GET /v1/models` and `GET /v1/models/{id}`: OpenAI's list and model objects, or Anthropic's shape
when the request carries `anthropic-version` (the anthropic SDK and Claude Code send it)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from llm_api.routers.openapi import CLIENT_KEY_SECURITY
from llm_api.routers.schemas import EITHER_ERRORS
from llm_api.security.auth import ClientKeyDep
from llm_api.services.models import LISTED_SINCE, LISTED_SINCE_ISO, ListedModel, ModelCatalog

router = APIRouter()


def _catalog(request: Request) -> ModelCatalog:
    catalog: ModelCatalog = request.app.state.model_catalog
    return catalog


def _anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers


def _openai_model(model: ListedModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": LISTED_SINCE, "owned_by": model.provider}


def _anthropic_model(model: ListedModel) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": LISTED_SINCE_ISO,
    }


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


_LIST_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "OpenAI's model list, or Anthropic's page of models with `anthropic-version`",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.get(
    "/v1/models",
    responses={**_LIST_RESPONSE, **EITHER_ERRORS},
    summary="The models this gateway routes",
    response_class=Response,
    openapi_extra=CLIENT_KEY_SECURITY,
)
async def list_models(
    request: Request,
    _key_id: ClientKeyDep,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    after_id: Annotated[str | None, Query(max_length=200)] = None,
    before_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    catalog = _catalog(request)
    if not _anthropic(request):
        page = catalog.page(limit=limit)
        return _json({"object": "list", "data": [_openai_model(m) for m in page.models]})
    page = catalog.page(limit=limit or 20, after_id=after_id, before_id=before_id)
    data = [_anthropic_model(m) for m in page.models]
    return _json(
        {
            "data": data,
            "has_more": page.has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


@router.get(
    "/v1/models/{model_id:path}",
    responses={**_LIST_RESPONSE, **EITHER_ERRORS},
    summary="One model this gateway routes",
    response_class=Response,
    openapi_extra=CLIENT_KEY_SECURITY,
)
async def get_model(request: Request, model_id: str, _key_id: ClientKeyDep) -> Response:
    model = _catalog(request).get(model_id)
    return _json(_anthropic_model(model) if _anthropic(request) else _openai_model(model))
