"""`POST /v1/chat`: HTTP only — parse, authenticate, pick JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from llm_api.chat_model import ChatResult, EventBatch
from llm_api.codecs import gateway_chat
from llm_api.deps import chat_service_of, settings_of, spend_guard_of
from llm_api.error_handlers import gateway_error_response, safe_validation_details
from llm_api.errors import GatewayError, InvalidRequest
from llm_api.routers.direct import DirectRoute
from llm_api.routers.disconnect import unless_disconnected
from llm_api.routers.openapi import CLIENT_KEY_SECURITY, request_body
from llm_api.routers.schemas import SSE_CONTENT
from llm_api.routers.sse import SSEResponse
from llm_api.routers.streams import Streamer
from llm_api.schemas import ChatRequest, ChatResponse, ErrorResponse
from llm_api.security.auth import authenticate, key_charge
from llm_api.services.llm import PreparedCall
from llm_api.services.routed import RoutedCall
from llm_api.services.spending import MeteredChat

router = APIRouter(route_class=DirectRoute)

DONE = b"data: [DONE]\n\n"

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 402, 403, 404, 413, 422, 429, 502, 503, 504)
}
# The JSON answer's schema comes from `response_model`; with stream=true the answer is SSE.
_STREAM: dict[str, object] = {
    "description": "A ChatResponse, or `data:` events ending with `data: [DONE]` when stream=true",
    "content": SSE_CONTENT,
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


async def sse_events(service: Streamer, call: PreparedCall | RoutedCall) -> AsyncGenerator[bytes, None]:
    """Encode each delta as one `data:` event (those that arrived together in one chunk) and finish with
    exactly one `[DONE]`."""
    async with aclosing(service.stream_answer(call)) as items:
        async for item in items:
            if isinstance(item, EventBatch):
                encoded = gateway_chat.encode_stream_batch(item)
                if encoded:
                    yield encoded
    yield DONE


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses={200: _STREAM, **_ERRORS},
    openapi_extra={
        **request_body(ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")),
        **CLIENT_KEY_SECURITY,
    },
    summary="Chat with Claude or OpenAI; JSON, or SSE with stream=true",
)
async def chat(request: Request) -> Response:
    client = await authenticate(request)  # before the body is read: a bad key is a 401, never a 422
    # Its rate limit answers before anything else is checked; the hit goes with the reservation.
    async with key_charge(request, client).first() as charge:
        settings, service = settings_of(request), chat_service_of(request)
        chat_request = parse_chat_request(await request.body(), max_messages=settings.max_messages)
        neutral, defaulted = gateway_chat.decode_request(chat_request, default_model=settings.default_model)
        call = service.prepare(
            neutral, defaulted=defaulted, cache_control=request.headers.get("cache-control")
        )
        metered = await MeteredChat.reserve(
            service, call, guard=spend_guard_of(request), client=client, charge=charge, chat=neutral
        )
    headers = call.headers()
    if chat_request.stream:
        return SSEResponse(
            sse_events(metered, call),
            ping_interval_s=settings.stream_ping_interval_s,
            error_response=gateway_error_response,
            error_event=stream_error_event,
            headers=headers,
        )
    result = await unless_disconnected(request, metered.answer(call))
    assert isinstance(result, ChatResult), "a neutral chat is always translated"
    return Response(gateway_chat.encode_response(result), media_type="application/json", headers=headers)
