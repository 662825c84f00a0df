"""Emulation of the Anthropic Messages API (``POST /v1/messages``), JSON and SSE."""

from __future__ import annotations

import fnmatch
from typing import Any

from llm_api.emulator.content import (
    anthropic_stop_reason,
    count_deltas,
    count_input_tokens,
    plan_blocks,
    random_id,
)
from llm_api.emulator.exchange import Exchange, sse_frame
from llm_api.emulator.state import EmulatorConfig, Fault, Provider
from llm_api.emulator.upstream import ErrorReply, InvalidJSON

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

# Models released after Claude Opus 4.6: sampling parameters are rejected outright.
NO_SAMPLING_PARAMS_MODELS: tuple[str, ...] = (
    "claude-opus-4-7*",
    "claude-opus-4-8*",
    "claude-opus-5*",
    "claude-sonnet-5*",
    "claude-fable-5*",
)
SAMPLING_PARAMS: tuple[str, ...] = ("temperature", "top_p")

STATUS_TO_TYPE: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
TYPE_TO_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
DEFAULT_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization.",
    "api_error": "Internal server error",
    "timeout_error": "Request timeout",
    "overloaded_error": "Overloaded",
}


def rejects_sampling_params(model: str) -> bool:
    return any(fnmatch.fnmatchcase(model, pattern) for pattern in NO_SAMPLING_PARAMS_MODELS)


def error_payload(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def _validate_content(content: Any, where: str) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return f"{where}: Input should be a valid list"
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"{where}.{j}: Input should be a valid dictionary or object to extract fields from"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{j}.text: Field required"
    return None


def validate_messages_body(body: dict[str, Any], *, count_tokens: bool = False) -> str | None:
    """Return the message of a 400 invalid_request_error, or None if the body is acceptable."""
    required = ("model", "messages") if count_tokens else ("model", "max_tokens", "messages")
    for name in required:
        if name not in body:
            return f"{name}: Field required"
    model = body["model"]
    if not isinstance(model, str) or not model:
        return "model: Input should be a valid string"
    if not count_tokens:
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return "max_tokens: Input should be a valid integer"
        if max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    messages = body["messages"]
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        role = message.get("role")
        if role == "system":
            return (
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a '
                'top-level `system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in message:
            return f"messages.{i}.content: Field required"
        problem = _validate_content(message["content"], f"messages.{i}.content")
        if problem:
            return problem
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    return f"system.{j}.type: Input should be 'text'"
                if not isinstance(block.get("text"), str):
                    return f"system.{j}.text: Field required"
        elif not isinstance(system, str):
            return "system: Input should be a valid string or a list of text blocks"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    if rejects_sampling_params(model):
        for param in SAMPLING_PARAMS:
            if param in body:
                return f"`{param}` is deprecated for this model."
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or isinstance(temperature, bool):
            return "temperature: Input should be a valid number"
        if not 0 <= temperature <= 1:
            return "temperature: range: 0..1"
    return None


def _has_credentials(headers: dict[str, str]) -> bool:
    """``x-api-key``, or ``Authorization: Bearer`` (what anthropic SDK 2.x sends for api_key)."""
    if headers.get("x-api-key", "").strip():
        return True
    auth = headers.get("authorization", "")
    return auth.startswith("Bearer ") and bool(auth[len("Bearer ") :].strip())


class AnthropicAPI:
    """Implements :class:`llm_api.emulator.upstream.ProviderAPI` for Anthropic."""

    name: Provider = "anthropic"

    def request_headers(self) -> dict[str, str]:
        return {"request-id": random_id("req_")}

    def _error(self, status: int, error_type: str, message: str) -> ErrorReply:
        request_id = random_id("req_")
        return ErrorReply(status, error_payload(error_type, message, request_id), {"request-id": request_id})

    def error_reply(self, status: int, error_type: str | None, message: str | None) -> ErrorReply:
        if error_type is None:
            error_type = STATUS_TO_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return self._error(status, error_type, message or DEFAULT_MESSAGES.get(error_type, "Error"))

    def status_for_error_type(self, error_type: str | None) -> int:
        return TYPE_TO_STATUS.get(error_type or "api_error", 500)

    def check_request(self, path: str, headers: dict[str, str], body: Any) -> ErrorReply | None:
        if not _has_credentials(headers):
            return self._error(401, "authentication_error", "x-api-key header is required")
        if isinstance(body, InvalidJSON) or body is None:
            return self._error(400, "invalid_request_error", "There was an error parsing the body.")
        if not isinstance(body, dict):
            return self._error(400, "invalid_request_error", "Input should be an object")
        problem = validate_messages_body(body, count_tokens=path == COUNT_TOKENS_PATH)
        if problem is not None:
            return self._error(400, "invalid_request_error", problem)
        return None

    async def respond(
        self,
        ex: Exchange,
        path: str,
        body: dict[str, Any],
        config: EmulatorConfig,
        fault: Fault | None,
    ) -> None:
        input_tokens = count_input_tokens(body.get("messages"), body.get("system"))
        if path == COUNT_TOKENS_PATH:
            await ex.send_json(200, {"input_tokens": input_tokens}, self.request_headers())
            return
        blocks = plan_blocks(config)
        if body.get("stream") is True:
            fail_after = fault.fail_after_chunks if fault is not None else None
            error_type = (fault.error_type if fault is not None else None) or "api_error"
            message = (fault.message if fault is not None else None) or DEFAULT_MESSAGES.get(
                error_type, "Internal server error"
            )
            await self._stream(ex, body, config, blocks, input_tokens, fail_after, error_type, message)
            return
        delay = config.first_token_delay_s + config.chunk_delay_s * max(count_deltas(blocks) - 1, 0)
        if not await ex.sleep(delay):
            return
        payload = {
            "id": random_id("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "".join(block)} for block in blocks],
            "stop_reason": anthropic_stop_reason(config),
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": count_deltas(blocks),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
        ex.record.chunks_sent = count_deltas(blocks)
        await ex.send_json(200, payload, self.request_headers())

    async def _stream(
        self,
        ex: Exchange,
        body: dict[str, Any],
        config: EmulatorConfig,
        blocks: list[list[str]],
        input_tokens: int,
        fail_after: int | None,
        error_type: str,
        message: str,
    ) -> None:
        request_id = random_id("req_")
        if not await ex.start_stream({"request-id": request_id}):
            return
        start = {
            "type": "message_start",
            "message": {
                "id": random_id("msg_01"),
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "service_tier": "standard",
                },
            },
        }
        if not await ex.send_event(sse_frame(start, "message_start")):
            return
        if config.ping_before_first and not await ex.send_event(_PING):
            return
        if not await ex.sleep(config.first_token_delay_s):
            return
        sent = 0
        for index, pieces in enumerate(blocks):
            block_start = {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            if not await ex.send_event(sse_frame(block_start, "content_block_start")):
                return
            if index == 0 and not await ex.send_event(_PING):
                return
            for piece in pieces:
                if fail_after is not None and sent >= fail_after:
                    await self._fail(ex, error_type, message, request_id)
                    return
                if sent > 0 and not await ex.sleep(config.chunk_delay_s):
                    return
                delta = {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
                if not await ex.send_event(sse_frame(delta, "content_block_delta")):
                    return
                sent += 1
                ex.record.chunks_sent = sent
            stop = {"type": "content_block_stop", "index": index}
            if not await ex.send_event(sse_frame(stop, "content_block_stop")):
                return
        if fail_after is not None and sent >= fail_after:
            await self._fail(ex, error_type, message, request_id)
            return
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": anthropic_stop_reason(config), "stop_sequence": None},
            "usage": {"output_tokens": sent},
        }
        if not await ex.send_event(sse_frame(message_delta, "message_delta")):
            return
        if not await ex.send_event(sse_frame({"type": "message_stop"}, "message_stop")):
            return
        await ex.end_stream()

    async def _fail(self, ex: Exchange, error_type: str, message: str, request_id: str) -> None:
        frame = sse_frame(error_payload(error_type, message, request_id), "error")
        if await ex.send_event(frame):
            await ex.end_stream(failed=True)


_PING = sse_frame({"type": "ping"}, "ping")
