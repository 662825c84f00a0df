"""Emulation of the Anthropic Messages API (``POST /v1/messages``, ``/count_tokens``), JSON and SSE."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from llm_api.emulator.answer import Answer, RequestFacts, plan_answer, text_of
from llm_api.emulator.anthropic_validate import validate_messages_body
from llm_api.emulator.content import anthropic_stop_reason, count_input_tokens, random_id
from llm_api.emulator.exchange import Exchange, sse_frame
from llm_api.emulator.state import EmulatorConfig, EmulatorState, Fault, Provider
from llm_api.emulator.upstream import ErrorReply, InvalidJSON

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

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


def error_payload(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def has_credentials(headers: dict[str, str]) -> bool:
    """``x-api-key``, or ``Authorization: Bearer`` (what anthropic SDK 2.x sends for api_key)."""
    if headers.get("x-api-key", "").strip():
        return True
    auth = headers.get("authorization", "")
    return auth.startswith("Bearer ") and bool(auth[len("Bearer ") :].strip())


def anthropic_error(status: int, error_type: str, message: str) -> ErrorReply:
    request_id = random_id("req_")
    return ErrorReply(status, error_payload(error_type, message, request_id), {"request-id": request_id})


def _signature() -> str:
    return base64.b64encode(secrets.token_bytes(48)).decode()


def request_facts(body: dict[str, Any]) -> RequestFacts:
    facts = RequestFacts()
    tools = [t for t in body.get("tools") or [] if t.get("type") in (None, "custom")]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and tools:
        if choice.get("type") == "tool":
            tool = next(t for t in tools if t["name"] == choice["name"])
            facts.forced_tool = (tool["name"], tool["input_schema"])
        elif choice.get("type") == "any":
            facts.forced_tool = (tools[0]["name"], tools[0]["input_schema"])
    facts.one_tool_call = isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True
    facts.no_tool_calls = isinstance(choice, dict) and choice.get("type") == "none"
    config = body.get("output_config")
    for fmt in (body.get("output_format"), config.get("format") if isinstance(config, dict) else None):
        if isinstance(fmt, dict):
            facts.json_schema = fmt["schema"]
    last = body["messages"][-1]
    content = last["content"]
    if last["role"] == "user" and isinstance(content, list):
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            facts.tool_result = " ".join(text_of(b.get("content", "")) for b in results) or "(empty)"
    thinking = body.get("thinking")
    facts.thinking = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    return facts


def _usage(config: EmulatorConfig, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": config.cache_creation_tokens,
        "cache_read_input_tokens": config.cached_tokens,
        "service_tier": "standard",
    }


def _blocks(answer: Answer) -> list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]]:
    """Each content block as (content_block_start block, stream deltas, complete JSON block)."""
    result: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = []
    if answer.thinking is not None:
        signature = _signature()
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in answer.thinking]
        deltas.append({"type": "signature_delta", "signature": signature})
        thinking = "".join(answer.thinking)
        result.append(
            (
                {"type": "thinking", "thinking": "", "signature": ""},
                deltas,
                {"type": "thinking", "thinking": thinking, "signature": signature},
            )
        )
    for pieces in answer.texts:
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
        result.append(({"type": "text", "text": ""}, deltas, {"type": "text", "text": "".join(pieces)}))
    for call in answer.tool_calls:
        tool_id = call.id or random_id("toolu_01", 22)
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        if call.input:
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in call.argument_pieces()]
        start = {"type": "tool_use", "id": tool_id, "name": call.name, "input": {}}
        result.append((start, deltas, {**start, "input": call.input}))
    return result


class AnthropicAPI:
    """Implements :class:`llm_api.emulator.upstream.ProviderAPI` for Anthropic."""

    name: Provider = "anthropic"

    def request_headers(self) -> dict[str, str]:
        return {"request-id": random_id("req_")}

    def error_reply(self, status: int, error_type: str | None, message: str | None) -> ErrorReply:
        if error_type is None:
            error_type = STATUS_TO_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return anthropic_error(status, error_type, message or DEFAULT_MESSAGES.get(error_type, "Error"))

    def status_for_error_type(self, error_type: str | None) -> int:
        return TYPE_TO_STATUS.get(error_type or "api_error", 500)

    def check_request(
        self, path: str, headers: dict[str, str], body: Any, state: EmulatorState
    ) -> ErrorReply | None:
        if not has_credentials(headers):
            return anthropic_error(401, "authentication_error", "x-api-key header is required")
        if isinstance(body, InvalidJSON) or body is None:
            return anthropic_error(400, "invalid_request_error", "There was an error parsing the body.")
        if not isinstance(body, dict):
            return anthropic_error(400, "invalid_request_error", "Input should be an object")
        problem = validate_messages_body(body, state.models, count_tokens=path == COUNT_TOKENS_PATH)
        if problem is not None:
            return anthropic_error(400, "invalid_request_error", problem)
        return None

    async def respond(
        self,
        ex: Exchange,
        path: str,
        body: dict[str, Any],
        state: EmulatorState,
        fault: Fault | None,
    ) -> None:
        input_tokens = count_input_tokens(body.get("messages"), body.get("system"), body.get("tools"))
        if path == COUNT_TOKENS_PATH:
            await ex.send_json(200, {"input_tokens": input_tokens}, self.request_headers())
            return
        config = state.config
        turn = state.pop_turn(self.name)
        if turn is not None:
            ex.record.turn = turn.to_json()
        answer = plan_answer(config, turn, request_facts(body))
        thinking = body.get("thinking")
        if (
            answer.thinking is not None
            and isinstance(thinking, dict)
            and thinking.get("display") == "omitted"
        ):
            answer.thinking = []
        blocks = _blocks(answer)
        stop_reason = anthropic_stop_reason(answer.stop_reason)
        if body.get("stream") is True:
            await _Stream(ex, body, config, fault, input_tokens, answer).run(blocks, stop_reason)
            return
        deltas = sum(len(b[1]) for b in blocks)
        delay = config.first_token_delay_s + config.chunk_delay_s * max(deltas - 1, 0)
        if not await ex.sleep(delay):
            return
        payload = {
            "id": random_id("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [block[2] for block in blocks],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": _usage(config, input_tokens, answer.output_tokens()),
        }
        ex.record.chunks_sent = deltas
        await ex.send_json(200, payload, self.request_headers())


class _Stream:
    """One SSE answer: message_start, the blocks with their deltas, message_delta, message_stop."""

    def __init__(
        self,
        ex: Exchange,
        body: dict[str, Any],
        config: EmulatorConfig,
        fault: Fault | None,
        input_tokens: int,
        answer: Answer,
    ) -> None:
        self.ex = ex
        self.body = body
        self.config = config
        self.fail_after = fault.fail_after_chunks if fault is not None else None
        self.error_type = (fault.error_type if fault is not None else None) or "api_error"
        self.message = (fault.message if fault is not None else None) or DEFAULT_MESSAGES.get(
            self.error_type, "Internal server error"
        )
        self.input_tokens = input_tokens
        self.answer = answer
        self.request_id = random_id("req_")

    async def _send(self, payload: dict[str, Any]) -> bool:
        return await self.ex.send_event(sse_frame(payload, payload["type"]))

    async def run(
        self, blocks: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]], stop_reason: str
    ) -> None:
        ex, config = self.ex, self.config
        if not await ex.start_stream({"request-id": self.request_id}):
            return
        start = {
            "type": "message_start",
            "message": {
                "id": random_id("msg_01"),
                "type": "message",
                "role": "assistant",
                "model": self.body["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage(config, self.input_tokens, 1),
            },
        }
        if not await self._send(start):
            return
        if config.ping_before_first and not await ex.send_event(_PING):
            return
        if not await ex.sleep(config.first_token_delay_s):
            return
        sent = 0
        for index, (block_start, deltas, _) in enumerate(blocks):
            if not await self._send(
                {"type": "content_block_start", "index": index, "content_block": block_start}
            ):
                return
            if index == 0 and not await ex.send_event(_PING):
                return
            for delta in deltas:
                if self.fail_after is not None and sent >= self.fail_after:
                    await self._fail()
                    return
                if sent > 0 and not await ex.sleep(config.chunk_delay_s):
                    return
                if not await self._send({"type": "content_block_delta", "index": index, "delta": delta}):
                    return
                sent += 1
                ex.record.chunks_sent = sent
            if not await self._send({"type": "content_block_stop", "index": index}):
                return
        if self.fail_after is not None and sent >= self.fail_after:
            await self._fail()
            return
        usage = _usage(config, self.input_tokens, self.answer.output_tokens())
        del usage["service_tier"]
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage,
        }
        if not await self._send(message_delta):
            return
        if not await self._send({"type": "message_stop"}):
            return
        await ex.end_stream()

    async def _fail(self) -> None:
        frame = sse_frame(error_payload(self.error_type, self.message, self.request_id), "error")
        if await self.ex.send_event(frame):
            await self.ex.end_stream(failed=True)


_PING = sse_frame({"type": "ping"}, "ping")
