"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API, for any model.

HTTP only: validate with the Anthropic codec, let the service relay (a Claude model: `anthropic-beta` and
`?beta=true` passed on) or translate (any other), and answer in Anthropic's format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from llm_api.chat_model import MessageStart
from llm_api.codecs import anthropic_messages
from llm_api.deps import chat_service_of, settings_of, spend_guard_of
from llm_api.error_handlers import ANTHROPIC, gateway_error_response, stream_error_frame
from llm_api.errors import GatewayError
from llm_api.routers.direct import DirectRoute
from llm_api.routers.disconnect import unless_disconnected
from llm_api.routers.openapi import CLIENT_KEY_SECURITY, request_body
from llm_api.routers.schemas import ANTHROPIC_ERRORS, json_or_sse
from llm_api.routers.sse import SSEResponse
from llm_api.routers.streams import model_of, stream_body
from llm_api.security.auth import authenticate, key_charge, require_client
from llm_api.security.managed_keys import authorize_model
from llm_api.services.llm import WireRequest
from llm_api.services.providers.base import RelayedResponse
from llm_api.services.spending import MeteredChat

router = APIRouter(route_class=DirectRoute)

_SCHEMA, _DEFS = anthropic_messages.request_json_schema()
_COUNT_SCHEMA, _COUNT_DEFS = anthropic_messages.request_json_schema(anthropic_messages.CountTokensRequest)
FORWARDED_HEADERS = ("anthropic-beta",)
ESTIMATE_HEADER = "X-LLM-Token-Count"


def _forwarded(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The headers and query passed on to Anthropic when the request is relayed."""
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    beta = request.query_params.get("beta")
    return headers, ({"beta": beta} if beta is not None else {})


def _names(body: Mapping[str, Any]) -> dict[str, str]:
    """The client's names for the neutral parameters, for the X-LLM-*-Params headers."""
    output_config = body.get("output_config")
    reasoning = [name for name in ("thinking",) if name in body]
    if isinstance(output_config, Mapping) and "effort" in output_config:
        reasoning.append("output_config.effort")
    return {"reasoning": ",".join(reasoning) or "thinking"}


def _wire(request: Request, body: dict[str, Any]) -> WireRequest:
    headers, query = _forwarded(request)
    return WireRequest(
        wire_format=ANTHROPIC,
        body=body,
        decode=anthropic_messages.decode_request,
        headers=headers,
        query=query,
        names=_names(body),
    )


def stream_error_event(exc: GatewayError) -> bytes:
    return stream_error_frame(exc, wire_format=ANTHROPIC)


@router.post(
    "/v1/messages",
    responses={200: json_or_sse("A message, or the Messages stream's named events"), **ANTHROPIC_ERRORS},
    openapi_extra={**request_body(_SCHEMA, defs=_DEFS), **CLIENT_KEY_SECURITY},
    summary="Anthropic Messages, for any model (relayed to Claude models, translated for others)",
    response_class=Response,
)
async def messages(request: Request) -> Response:
    client = await authenticate(request)  # before the body is read: a bad key is a 401, never a 400
    # Its rate limit answers before anything else is checked; the hit goes with the reservation.
    async with key_charge(request, client).first() as charge:
        settings, service = settings_of(request), chat_service_of(request)
        wire = _wire(request, anthropic_messages.validate_request(await request.body()))
        call = service.prepare_wire(wire, cache_control=request.headers.get("cache-control"))
        metered = await MeteredChat.reserve(
            service, call, guard=spend_guard_of(request), client=client, charge=charge
        )
    headers = call.headers()
    if wire.stream:

        def encoder_for(start: MessageStart) -> anthropic_messages.StreamEncoder:
            return anthropic_messages.StreamEncoder(id=start.id, model=start.model or model_of(call))

        events = stream_body(metered, call, encoder_for)
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
    answer = anthropic_messages.encode_response(result)
    return Response(orjson.dumps(answer), media_type="application/json", headers=headers)


@router.post(
    "/v1/messages/count_tokens",
    responses={200: {"description": '`{"input_tokens": N}`'}, **ANTHROPIC_ERRORS},
    openapi_extra={**request_body(_COUNT_SCHEMA, defs=_COUNT_DEFS), **CLIENT_KEY_SECURITY},
    summary="Count a Messages request's input tokens (Claude: Anthropic's count; others: an estimate)",
    response_class=Response,
)
async def count_tokens(request: Request) -> Response:
    client = await require_client(request)
    settings, service = settings_of(request), chat_service_of(request)
    wire = _wire(request, anthropic_messages.validate_count_tokens(await request.body()))
    authorize_model(client, wire.model or settings.default_model)
    count = await unless_disconnected(request, service.count_tokens(wire))
    headers = {ESTIMATE_HEADER: "estimate"} if count.estimated else {}
    return Response(
        orjson.dumps({"input_tokens": count.input_tokens}), media_type="application/json", headers=headers
    )
