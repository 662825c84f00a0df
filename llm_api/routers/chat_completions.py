"""`POST /v1/chat/completions`: OpenAI's Chat Completions, JSON and SSE, for any model.

HTTP only: validate with the OpenAI codec, let the service relay (an OpenAI model) or translate (any
other), and answer in OpenAI's format.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from llm_api.chat_model import MessageStart
from llm_api.codecs import openai_chat
from llm_api.deps import chat_service_of, settings_of, spend_guard_of
from llm_api.error_handlers import OPENAI, gateway_error_response, stream_error_frame
from llm_api.errors import GatewayError
from llm_api.routers.direct import DirectRoute
from llm_api.routers.disconnect import unless_disconnected
from llm_api.routers.openapi import CLIENT_KEY_SECURITY, request_body
from llm_api.routers.schemas import OPENAI_ERRORS, json_or_sse
from llm_api.routers.sse import SSEResponse
from llm_api.routers.streams import model_of, stream_body
from llm_api.security.auth import authenticate, key_charge
from llm_api.services.llm import WireRequest
from llm_api.services.providers.base import RelayedResponse
from llm_api.services.spending import MeteredChat

router = APIRouter(route_class=DirectRoute)

_SCHEMA, _DEFS = openai_chat.request_json_schema()


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _names(body: Mapping[str, Any]) -> dict[str, str]:
    """The client's names for the neutral parameters, for the X-LLM-*-Params headers."""
    max_tokens = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    return {"max_tokens": max_tokens, "reasoning": "reasoning_effort"}


def stream_error_event(exc: GatewayError) -> bytes:
    return stream_error_frame(exc, wire_format=OPENAI)


@router.post(
    "/v1/chat/completions",
    responses={200: json_or_sse("A chat.completion, or chat.completion.chunk events"), **OPENAI_ERRORS},
    openapi_extra={**request_body(_SCHEMA, defs=_DEFS), **CLIENT_KEY_SECURITY},
    summary="OpenAI Chat Completions, for any model (relayed to OpenAI models, translated for others)",
    response_class=Response,
)
async def chat_completions(request: Request) -> Response:
    client = await authenticate(request)  # before the body is read: a bad key is a 401, never a 400
    # Its rate limit answers before anything else is checked; the hit goes with the reservation.
    async with key_charge(request, client).first() as charge:
        settings, service = settings_of(request), chat_service_of(request)
        body = openai_chat.validate_request(await request.body())
        wire = WireRequest(
            wire_format=OPENAI,
            body=body,
            decode=openai_chat.decode_request,
            include_usage=_include_usage(body),
            names=_names(body),
        )
        call = service.prepare_wire(wire, cache_control=request.headers.get("cache-control"))
        metered = await MeteredChat.reserve(
            service, call, guard=spend_guard_of(request), client=client, charge=charge
        )
    headers = call.headers()
    created = int(time.time())
    if wire.stream:

        def encoder_for(start: MessageStart) -> openai_chat.StreamEncoder:
            return openai_chat.StreamEncoder(
                id=start.id,
                model=start.model or model_of(call),
                created=created,
                include_usage=wire.include_usage,
            )

        events = stream_body(metered, call, encoder_for, finish=openai_chat.StreamEncoder.done)
        return SSEResponse(
            events,
            ping_interval_s=settings.stream_ping_interval_s,
            error_response=gateway_error_response,
            error_event=stream_error_event,
            headers=headers,
        )
    result = await unless_disconnected(request, metered.answer(call))
    if isinstance(result, RelayedResponse):
        return Response(result.body, media_type="application/json", headers=headers)
    answer = openai_chat.encode_response(result, created=created)
    return Response(orjson.dumps(answer), media_type="application/json", headers=headers)
