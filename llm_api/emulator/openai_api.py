"""Emulation of the OpenAI Chat Completions API (``POST /v1/chat/completions``), JSON and SSE."""

from __future__ import annotations

import time
from typing import Any

from llm_api.emulator.answer import Answer, RequestFacts, plan_answer, text_of
from llm_api.emulator.content import count_input_tokens, openai_finish_reason, random_id
from llm_api.emulator.exchange import Exchange, sse_frame
from llm_api.emulator.openai_validate import error_payload, validate_chat_body
from llm_api.emulator.state import EmulatorConfig, EmulatorState, Fault, Provider
from llm_api.emulator.upstream import ErrorReply, InvalidJSON

CHAT_PATH = "/v1/chat/completions"

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
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


def has_bearer(headers: dict[str, str]) -> bool:
    auth = headers.get("authorization", "")
    return auth.startswith("Bearer ") and bool(auth[len("Bearer ") :].strip())


def request_facts(body: dict[str, Any]) -> RequestFacts:
    facts = RequestFacts()
    functions = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    choice = body.get("tool_choice")
    forced: dict[str, Any] | None = None
    if choice == "required" and functions:
        forced = functions[0]
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        forced = next((f for f in functions if f["name"] == choice["function"]["name"]), None)
    if forced is not None:
        facts.forced_tool = (forced["name"], forced.get("parameters") or {"type": "object"})
    facts.one_tool_call = body.get("parallel_tool_calls") is False
    facts.no_tool_calls = choice == "none"
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        facts.json_schema = fmt["json_schema"].get("schema") or {"type": "object"}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        facts.json_object = True
    messages = body["messages"]
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, text_of(message.get("content")))
    if results:
        facts.tool_result = " ".join(r for r in results if r) or "(empty)"
    return facts


def _usage(config: EmulatorConfig, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    prompt = prompt_tokens + config.cached_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": config.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _with_ids(answer: Answer) -> list[tuple[str, str, list[str]]]:
    """Each tool call as (id, name, argument fragments)."""
    return [
        (call.id or random_id("call_", 24), call.name, call.argument_pieces()) for call in answer.tool_calls
    ]


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

    def check_request(
        self, path: str, headers: dict[str, str], body: Any, state: EmulatorState
    ) -> ErrorReply | None:
        if not has_bearer(headers):
            return ErrorReply(401, error_payload(NO_KEY_MESSAGE, "invalid_request_error"))
        if isinstance(body, InvalidJSON) or not isinstance(body, dict):
            message = (
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)"
            )
            return ErrorReply(400, error_payload(message, "invalid_request_error"))
        return validate_chat_body(body, state.models)

    async def respond(
        self,
        ex: Exchange,
        path: str,
        body: dict[str, Any],
        state: EmulatorState,
        fault: Fault | None,
    ) -> None:
        config = state.config
        turn = state.pop_turn(self.name)
        if turn is not None:
            ex.record.turn = turn.to_json()
        answer = plan_answer(config, turn, request_facts(body))
        pieces = [piece for block in answer.texts for piece in block]
        calls = _with_ids(answer)
        prompt_tokens = count_input_tokens(body.get("messages"), None, body.get("tools"))
        completion_id = random_id("chatcmpl-", 29)
        created = int(time.time())
        finish_reason = openai_finish_reason(answer.stop_reason)
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": None,
        }
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            if include_usage:
                base["usage"] = None
            stream = _Stream(ex, base, config, fault, include_usage)
            await stream.run(
                pieces, calls, finish_reason, _usage(config, prompt_tokens, answer.output_tokens())
            )
            return
        deltas = len(pieces) + sum(len(fragments) + 1 for _, _, fragments in calls)
        delay = config.first_token_delay_s + config.chunk_delay_s * max(deltas - 1, 0)
        if not await ex.sleep(delay):
            return
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(pieces) if pieces or not calls else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = [
                {"id": tool_id, "type": "function", "function": {"name": name, "arguments": "".join(args)}}
                for tool_id, name, args in calls
            ]
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": _usage(config, prompt_tokens, answer.output_tokens()),
        }
        ex.record.chunks_sent = deltas
        await ex.send_json(200, payload, self.request_headers())


class _Stream:
    """One SSE answer: a role chunk, content deltas, tool-call deltas, the finish, usage, [DONE]."""

    def __init__(
        self,
        ex: Exchange,
        base: dict[str, Any],
        config: EmulatorConfig,
        fault: Fault | None,
        include_usage: bool,
    ) -> None:
        self.ex = ex
        self.base = base
        self.config = config
        self.fail_after = fault.fail_after_chunks if fault is not None else None
        self.error_type = (fault.error_type if fault is not None else None) or "server_error"
        self.message = (fault.message if fault is not None else None) or STREAM_ERROR_MESSAGE
        self.include_usage = include_usage
        self.sent = 0

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_frame({**self.base, "choices": [choice]})

    async def _delta(self, delta: dict[str, Any]) -> bool | None:
        """Send one counted delta. None: the scripted failure happened (stop); False: client gone."""
        ex = self.ex
        if self.fail_after is not None and self.sent >= self.fail_after:
            # What OpenAI does on a mid-stream failure: an error object as the SSE data,
            # then the stream ends without [DONE]. The openai SDK raises openai.APIError.
            if await ex.send_event(sse_frame(error_payload(self.message, self.error_type))):
                await ex.end_stream(failed=True)
            return None
        if self.sent > 0 and not await ex.sleep(self.config.chunk_delay_s):
            return False
        if not await ex.send_event(self._chunk(delta)):
            return False
        self.sent += 1
        ex.record.chunks_sent = self.sent
        return True

    async def run(
        self,
        pieces: list[str],
        calls: list[tuple[str, str, list[str]]],
        finish_reason: str,
        usage: dict[str, Any],
    ) -> None:
        ex, config = self.ex, self.config
        if not await ex.start_stream({"x-request-id": random_id("req_", 32), "openai-processing-ms": "1"}):
            return
        if config.ping_before_first and not await ex.send_event(b": ping\n\n"):
            return
        if not await ex.sleep(config.first_token_delay_s):
            return
        role = {"role": "assistant", "content": "" if pieces or not calls else None, "refusal": None}
        if not await ex.send_event(self._chunk(role)):
            return
        deltas: list[dict[str, Any]] = [{"content": piece} for piece in pieces]
        for index, (tool_id, name, fragments) in enumerate(calls):
            first = {
                "index": index,
                "id": tool_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            deltas.append({"tool_calls": [first]})
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": f}}]} for f in fragments]
        for delta in deltas:
            if not await self._delta(delta):
                return
        if self.fail_after is not None and self.sent >= self.fail_after:
            await self._delta({})
            return
        if not await ex.send_event(self._chunk({}, finish_reason)):
            return
        usage_chunk = sse_frame({**self.base, "choices": [], "usage": usage})
        if self.include_usage and not await ex.send_event(usage_chunk):
            return
        if not await ex.send_event(b"data: [DONE]\n\n"):
            return
        await ex.end_stream()
