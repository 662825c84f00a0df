"""``GET /v1/models`` and ``/v1/models/{id}``: OpenAI's shape, or Anthropic's with ``anthropic-version``."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from llm_api.emulator.anthropic_api import AnthropicAPI, anthropic_error, has_credentials
from llm_api.emulator.catalogue import ModelEntry, rfc3339
from llm_api.emulator.exchange import Exchange
from llm_api.emulator.openai_api import NO_KEY_MESSAGE, OpenAIAPI, has_bearer
from llm_api.emulator.openai_validate import error_payload
from llm_api.emulator.state import EmulatorState, Fault
from llm_api.emulator.upstream import ErrorReply

MODELS_PATH = "/v1/models"
_DEFAULT_LIMIT = 20
_MAX_LIMIT = 1000


def _anthropic_model(entry: ModelEntry) -> dict[str, Any]:
    return {
        "type": "model",
        "id": entry.id,
        "display_name": entry.display_name,
        "created_at": rfc3339(entry.created),
        "max_input_tokens": entry.max_input_tokens,
        "max_tokens": entry.max_output_tokens,
        "lifecycle": "active",
    }


def _openai_model(entry: ModelEntry) -> dict[str, Any]:
    return {"id": entry.id, "object": "model", "created": entry.created, "owned_by": entry.owned_by}


def _model_id(path: str) -> str | None:
    rest = path[len(MODELS_PATH) :].strip("/")
    return rest or None


class AnthropicModelsAPI(AnthropicAPI):
    """Anthropic's models endpoints: newest first, paged by ``limit``/``after_id``/``before_id``."""

    def check_request(
        self, path: str, headers: dict[str, str], body: Any, state: EmulatorState
    ) -> ErrorReply | None:
        if not has_credentials(headers):
            return anthropic_error(401, "authentication_error", "x-api-key header is required")
        return None

    async def respond(
        self, ex: Exchange, path: str, body: dict[str, Any], state: EmulatorState, fault: Fault | None
    ) -> None:
        models = sorted((m for m in state.models if m.provider == "anthropic"), key=lambda m: -m.created)
        model_id = _model_id(path)
        if model_id is not None:
            entry = next((m for m in models if m.id == model_id), None)
            if entry is None:
                error = anthropic_error(404, "not_found_error", f"model: {model_id}")
                await ex.send_json(404, error.payload, error.headers)
                return
            await ex.send_json(200, _anthropic_model(entry), self.request_headers())
            return
        query = {k: v[-1] for k, v in parse_qs(ex.record.query).items()}
        page = _page(models, query)
        if isinstance(page, ErrorReply):
            await ex.send_json(page.status, page.payload, page.headers)
            return
        items, has_more = page
        payload = {
            "data": [_anthropic_model(m) for m in items],
            "has_more": has_more,
            "first_id": items[0].id if items else None,
            "last_id": items[-1].id if items else None,
        }
        await ex.send_json(200, payload, self.request_headers())


def _page(models: list[ModelEntry], query: dict[str, str]) -> tuple[list[ModelEntry], bool] | ErrorReply:
    raw_limit = query.get("limit", str(_DEFAULT_LIMIT))
    if not raw_limit.isdigit():
        return anthropic_error(400, "invalid_request_error", "limit: Input should be a valid integer")
    limit = int(raw_limit)
    if not 1 <= limit <= _MAX_LIMIT:
        return anthropic_error(
            400, "invalid_request_error", f"limit: Input should be between 1 and {_MAX_LIMIT}"
        )
    ids = [m.id for m in models]
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        return anthropic_error(400, "invalid_request_error", "Cannot specify both after_id and before_id")
    for name, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in ids:
            return anthropic_error(400, "invalid_request_error", f"{name}: unknown model id {cursor}")
    if before is not None:
        end = ids.index(before)
        start = max(end - limit, 0)
        return models[start:end], start > 0
    start = ids.index(after) + 1 if after is not None else 0
    return models[start : start + limit], start + limit < len(models)


class OpenAIModelsAPI(OpenAIAPI):
    """OpenAI's models endpoints: the whole list, no paging."""

    def check_request(
        self, path: str, headers: dict[str, str], body: Any, state: EmulatorState
    ) -> ErrorReply | None:
        if not has_bearer(headers):
            return ErrorReply(401, error_payload(NO_KEY_MESSAGE, "invalid_request_error"))
        return None

    async def respond(
        self, ex: Exchange, path: str, body: dict[str, Any], state: EmulatorState, fault: Fault | None
    ) -> None:
        models = [m for m in state.models if m.provider == "openai"]
        model_id = _model_id(path)
        if model_id is None:
            payload = {"object": "list", "data": [_openai_model(m) for m in models]}
            await ex.send_json(200, payload, self.request_headers())
            return
        entry = next((m for m in models if m.id == model_id), None)
        if entry is None:
            message = f"The model '{model_id}' does not exist"
            await ex.send_json(
                404,
                error_payload(message, "invalid_request_error", "model", "model_not_found"),
                self.request_headers(),
            )
            return
        await ex.send_json(200, _openai_model(entry), self.request_headers())
