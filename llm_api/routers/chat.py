"""`POST /v1/chat`: HTTP only — parse, authenticate, pick JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from llm_api.deps import ChatServiceDep, SettingsDep
from llm_api.error_handlers import gateway_error_response, safe_validation_details
from llm_api.errors import GatewayError, InvalidRequest
from llm_api.routers.disconnect import unless_disconnected
from llm_api.routers.sse import SSEResponse
from llm_api.schemas import ChatRequest, ChatResponse, ErrorResponse
from llm_api.security.auth import ClientDep
from llm_api.security.managed_keys import authorize_model, spend_limits
from llm_api.services.llm import ChatService, PreparedCall
from llm_api.services.providers.base import TextDeltas
from llm_api.services.spending import ChatSpend

router = APIRouter()

DONE = b"data: [DONE]\n\n"

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 402, 403, 413, 422, 429, 502, 503, 504)
}


def parse_chat_request(body: bytes, *, max_messages: int) -> ChatRequest:
    """Validate the raw body; errors name the field and rule but never echo the input."""
    try:
        chat = ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(
            "the request body is not valid", details=safe_validation_details(exc.errors())
        ) from None
    if len(chat.messages) > max_messages:
        raise InvalidRequest(f"too many messages: at most {max_messages} are accepted")
    return chat


def stream_error_event(exc: GatewayError) -> bytes:
    return b"data: " + orjson.dumps({"error": exc.error_type, "detail": exc.message}) + b"\n\n"


async def sse_events(
    service: ChatService, call: PreparedCall, spend: ChatSpend | None = None
) -> AsyncGenerator[bytes, None]:
    """Encode each delta as one `data:` event (those that arrived together in one chunk) and finish with
    exactly one `[DONE]`."""
    stream = service.stream(call) if spend is None else spend.stream(service.stream(call))
    async with aclosing(stream) as items:
        async for item in items:
            if isinstance(item, TextDeltas):
                yield b"".join([b"data: " + orjson.dumps({"delta": text}) + b"\n\n" for text in item.texts])
    yield DONE


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
        }
    },
    summary="Chat with Claude or OpenAI; JSON, or SSE with stream=true",
)
async def chat(
    request: Request, client: ClientDep, service: ChatServiceDep, settings: SettingsDep
) -> Response:
    chat_request = parse_chat_request(await request.body(), max_messages=settings.max_messages)
    call = service.prepare(chat_request)
    authorize_model(client, call.request.model)
    guard = request.app.state.spend_guard
    spend = await ChatSpend.reserve(
        guard, call, key_id=client.id, limits=spend_limits(client, guard.default_limits)
    )
    headers = {}
    if call.dropped_params:
        headers["X-LLM-Dropped-Params"] = ",".join(call.dropped_params)
    if chat_request.stream:
        return SSEResponse(
            sse_events(service, call, spend),
            ping_interval_s=settings.stream_ping_interval_s,
            error_response=gateway_error_response,
            error_event=stream_error_event,
            headers=headers,
        )
    completion = await unless_disconnected(request, spend.complete(service.complete(call)))
    body = {
        "id": completion.id,
        "content": completion.content,
        "model": completion.model,
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "stop_reason": completion.stop_reason,
    }
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)
