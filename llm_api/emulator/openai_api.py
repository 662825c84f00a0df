"""Emulation of the OpenAI Chat Completions API (``POST /v1/chat/completions``), JSON and SSE."""

from __future__ import annotations

import time
from typing import Any

from llm_api.emulator.content import (
    count_deltas,
    count_input_tokens,
    openai_finish_reason,
    plan_blocks,
    random_id,
)
from llm_api.emulator.exchange import Exchange, sse_frame
from llm_api.emulator.state import EmulatorConfig, Fault, Provider
from llm_api.emulator.upstream import ErrorReply, InvalidJSON

CHAT_PATH = "/v1/chat/completions"

# Reasoning models: only the default temperature, and max_completion_tokens not max_tokens.
REASONING_MODEL_PREFIXES: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
VALID_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool", "function")

# status -> (error type, code)
STATUS_TO_ERROR: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}
TYPE_TO_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "requests": 429,
    "tokens": 429,
    "insufficient_quota": 429,
    "server_error": 500,
}
DEFAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request.",
    401: "Incorrect API key provided.",
    403: "Country, region, or territory not supported.",
    404: "The model does not exist or you do not have access to it.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}
STREAM_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"


def is_reasoning_model(model: str) -> bool:
    return model.startswith(REASONING_MODEL_PREFIXES)


def error_payload(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _format_number(value: Any) -> str:
    return str(value)


def validate_chat_body(body: dict[str, Any]) -> ErrorReply | None:
    """Return a 400 in OpenAI's format, or None if the body is acceptable."""

    def bad(message: str, param: str | None = None, code: str | None = None) -> ErrorReply:
        return ErrorReply(400, error_payload(message, "invalid_request_error", param, code))

    model = body.get("model")
    if not model:
        return bad("you must provide a model parameter")
    if not isinstance(model, str):
        return bad("Invalid type for 'model': expected a string.", "model", "invalid_type")
    if "messages" not in body:
        return bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    messages = body["messages"]
    if not isinstance(messages, list):
        return bad("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        return bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return bad(
                f"Invalid type for 'messages[{i}]': expected an object.",
                f"messages[{i}]",
                "invalid_type",
            )
        role = message.get("role")
        if role not in VALID_ROLES:
            return bad(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        return bad("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return bad(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if is_reasoning_model(model):
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return bad(
                f"Unsupported value: 'temperature' does not support {_format_number(temperature)} "
                "with this model. Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
        if body.get("max_tokens") is not None:
            return bad(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            return bad("Invalid type for 'temperature': expected a number.", "temperature", "invalid_type")
        if temperature > 2:
            return bad(
                "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
                f"but got {_format_number(temperature)} instead.",
                "temperature",
                "decimal_above_max_value",
            )
        if temperature < 0:
            return bad(
                "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, "
                f"but got {_format_number(temperature)} instead.",
                "temperature",
                "decimal_below_min_value",
            )
    return None


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class OpenAIAPI:
    """Implements :class:`llm_api.emulator.upstream.ProviderAPI` for OpenAI."""

    name: Provider = "openai"

    def request_headers(self) -> dict[str, str]:
        return {"x-request-id": random_id("req_", 32), "openai-processing-ms": "1"}

    def error_reply(self, status: int, error_type: str | None, message: str | None) -> ErrorReply:
        default_type, code = STATUS_TO_ERROR.get(
            status, ("server_error", None) if status >= 500 else ("invalid_request_error", None)
        )
        text = message or DEFAULT_MESSAGES.get(status, "Error.")
        return ErrorReply(status, error_payload(text, error_type or default_type, None, code))

    def status_for_error_type(self, error_type: str | None) -> int:
        return TYPE_TO_STATUS.get(error_type or "server_error", 500)

    def check_request(self, path: str, headers: dict[str, str], body: Any) -> ErrorReply | None:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return ErrorReply(401, error_payload(message, "invalid_request_error"))
        if isinstance(body, InvalidJSON) or not isinstance(body, dict):
            message = (
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)"
            )
            return ErrorReply(400, error_payload(message, "invalid_request_error"))
        return validate_chat_body(body)

    async def respond(
        self,
        ex: Exchange,
        path: str,
        body: dict[str, Any],
        config: EmulatorConfig,
        fault: Fault | None,
    ) -> None:
        pieces = [piece for block in plan_blocks(config) for piece in block]
        prompt_tokens = count_input_tokens(body.get("messages"))
        completion_id = random_id("chatcmpl-", 29)
        created = int(time.time())
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            fail_after = fault.fail_after_chunks if fault is not None else None
            error_type = (fault.error_type if fault is not None else None) or "server_error"
            message = (fault.message if fault is not None else None) or STREAM_ERROR_MESSAGE
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "service_tier": "default",
                "system_fingerprint": None,
            }
            if include_usage:
                base["usage"] = None
            await self._stream(
                ex,
                base,
                config,
                pieces,
                prompt_tokens,
                include_usage,
                fail_after,
                error_type,
                message,
            )
            return
        delay = config.first_token_delay_s + config.chunk_delay_s * max(len(pieces) - 1, 0)
        if not await ex.sleep(delay):
            return
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(pieces),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": openai_finish_reason(config),
                }
            ],
            "usage": _usage(prompt_tokens, count_deltas([pieces])),
            "service_tier": "default",
            "system_fingerprint": None,
        }
        ex.record.chunks_sent = len(pieces)
        await ex.send_json(200, payload, self.request_headers())

    async def _stream(
        self,
        ex: Exchange,
        base: dict[str, Any],
        config: EmulatorConfig,
        pieces: list[str],
        prompt_tokens: int,
        include_usage: bool,
        fail_after: int | None,
        error_type: str,
        message: str,
    ) -> None:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return sse_frame({**base, "choices": [choice]})

        if not await ex.start_stream(self.request_headers()):
            return
        if config.ping_before_first and not await ex.send_event(b": ping\n\n"):
            return
        if not await ex.sleep(config.first_token_delay_s):
            return
        if not await ex.send_event(chunk({"role": "assistant", "content": "", "refusal": None})):
            return
        sent = 0
        for piece in pieces:
            if fail_after is not None and sent >= fail_after:
                break
            if sent > 0 and not await ex.sleep(config.chunk_delay_s):
                return
            if not await ex.send_event(chunk({"content": piece})):
                return
            sent += 1
            ex.record.chunks_sent = sent
        if fail_after is not None and sent >= fail_after:
            # What OpenAI does on a mid-stream failure: an error object as the SSE data,
            # then the stream ends without [DONE]. The openai SDK raises openai.APIError.
            if await ex.send_event(sse_frame(error_payload(message, error_type))):
                await ex.end_stream(failed=True)
            return
        if not await ex.send_event(chunk({}, openai_finish_reason(config))):
            return
        if include_usage:
            usage_chunk = {**base, "choices": [], "usage": _usage(prompt_tokens, sent)}
            if not await ex.send_event(sse_frame(usage_chunk)):
                return
        if not await ex.send_event(b"data: [DONE]\n\n"):
            return
        await ex.end_stream()
