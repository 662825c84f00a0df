"""The neutral `Chat` to a Messages request body, for a Claude model (the client spoke another format).

Decisions (documented in the README's translation table):
- All system text (`Chat.system`, then every `system` message in order) becomes the top-level `system`:
  a string when plain, text blocks when any block carries Anthropic extras (`cache_control`).
- Tool results lead their user turn: consecutive user messages that carry `ToolResult`s merge into one
  turn, tool results first (Anthropic requires them right after the assistant's `tool_use`).
- Empty text blocks and unsigned thinking (another vendor's reasoning cannot be verified) are left out;
  a message left with nothing is left out, and a chat left with no message is a 400 (Anthropic's would).
- Reasoning becomes `thinking: {"type": "enabled", "budget_tokens": N}`: `budget_tokens` when given,
  else by effort (`EFFORT_BUDGETS`; `minimal` means no thinking). The budget is capped to leave at least
  `MIN_BUDGET` tokens of `max_tokens` for the answer. Thinking is dropped and named when `max_tokens` is
  too small for that, when a tool choice forces a tool, or when the assistant turn being continued does
  not start with a thinking block (Anthropic refuses thinking in those cases). With thinking
  on, a `temperature` other than 1 and a `top_p` below 0.95 are refused by Anthropic: dropped and named.
- `response_format`: with `structured_outputs`, a `json_schema` becomes `output_config.format`;
  otherwise, and for `json_object` always, a forced tool `FORCED_JSON_TOOL` whose input schema is the
  schema (`{"type": "object"}` for json_object). `decode_response(..., unwrap_forced_json=True)` and
  `StreamDecoder(unwrap_forced_json=True)` turn its input back into text content.
- A `temperature` above 1 (OpenAI allows up to 2) is clamped to 1 and named in `clamped`.
- Whitespace-only stop sequences are refused by Anthropic: dropped, and `stop` named.
- `Chat.unmapped` entries are named in `dropped`. Only extras under the "anthropic" key are emitted
  (`_common.EXTRAS_KEY`): another format's fields never reach Anthropic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_api.chat_model import (
    Block,
    Chat,
    Image,
    Message,
    Reasoning,
    Text,
    ToolCall,
    ToolResult,
)
from llm_api.codecs.anthropic_messages._common import anthropic_extras
from llm_api.errors import UnsupportedParameter

FORCED_JSON_TOOL = "json_response"
FORCED_JSON_DESCRIPTION = "Give the answer as this tool's input: a JSON object matching its input schema."
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MIN_BUDGET = 1024
EFFORT_BUDGETS: Mapping[str, int] = {
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32768,
}


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    """A request body for the upstream, and the client's parameters it leaves out (`dropped`) or lowers
    (`clamped`). `unwrap_forced_json`: the body asks for JSON through `FORCED_JSON_TOOL`, so the answer's
    decoder must be told to turn that tool's input back into text."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()
    clamped: tuple[str, ...] = ()
    unwrap_forced_json: bool = False


def _text(block: Text) -> dict[str, Any]:
    return {"type": "text", "text": block.text, **anthropic_extras(block.extras)}


def _image(block: Image, where: str) -> dict[str, Any]:
    extras = anthropic_extras(block.extras)
    if block.url is not None:
        return {"type": "image", "source": {"type": "url", "url": block.url}, **extras}
    if block.media_type not in IMAGE_MEDIA_TYPES:
        raise UnsupportedParameter(
            f"{where}: image media type must be one of {', '.join(sorted(IMAGE_MEDIA_TYPES))}", param=where
        )
    source = {"type": "base64", "media_type": block.media_type, "data": block.data or ""}
    return {"type": "image", "source": source, **extras}


def _tool_result(block: ToolResult, where: str) -> dict[str, Any]:
    parts = [
        _text(part) if isinstance(part, Text) else _image(part, f"{where}.content.{i}")
        for i, part in enumerate(block.content)
        if not (isinstance(part, Text) and not part.text)
    ]
    encoded: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_call_id}
    if len(parts) == 1 and parts[0].keys() == {"type", "text"}:
        encoded["content"] = parts[0]["text"]
    elif parts:
        encoded["content"] = parts
    if block.is_error:
        encoded["is_error"] = True
    return {**encoded, **anthropic_extras(block.extras)}


def _block(block: Block, where: str) -> dict[str, Any] | None:
    if isinstance(block, Text):
        return _text(block) if block.text else None
    if isinstance(block, Image):
        return _image(block, where)
    if isinstance(block, ToolCall):
        call = {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.arguments)}
        return {**call, **anthropic_extras(block.extras)}
    if isinstance(block, ToolResult):
        return _tool_result(block, where)
    if block.redacted is not None:
        return {"type": "redacted_thinking", "data": block.redacted}
    if block.signature:
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    return None


def _content(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return str(blocks[0]["text"])
    return blocks


def _turns(messages: Iterable[tuple[int, Message]]) -> list[dict[str, Any]]:
    """Messages to turns, tool results leading the user turn they merge into."""
    turns: list[dict[str, Any]] = []
    merging = False  # is the last turn a user turn that holds tool results?
    for i, message in messages:
        blocks = [
            encoded
            for j, block in enumerate(message.content)
            if (encoded := _block(block, f"messages.{i}.content.{j}")) is not None
        ]
        if not blocks:
            continue
        has_results = any(block["type"] == "tool_result" for block in blocks)
        if message.role == "user" and turns and turns[-1]["role"] == "user" and (merging or has_results):
            blocks = [*turns.pop()["blocks"], *blocks]
            has_results = True
        if has_results:
            blocks.sort(key=lambda block: block["type"] != "tool_result")
        merging = message.role == "user" and has_results
        turns.append({"role": message.role, "blocks": blocks})
    return [{"role": turn["role"], "content": _content(turn["blocks"])} for turn in turns]


def _system(chat: Chat) -> str | list[dict[str, Any]] | None:
    texts = [*chat.system]
    for message in chat.messages:
        if message.role == "system":
            texts.extend(block for block in message.content if isinstance(block, Text))
    blocks = [_text(text) for text in texts if text.text]
    if not blocks:
        return None
    if all(block.keys() == {"type", "text"} for block in blocks):
        return "\n\n".join(str(block["text"]) for block in blocks)
    return blocks


def _thinking_can_continue(turns: list[dict[str, Any]]) -> bool:
    """Anthropic refuses thinking when the assistant turn being continued (a prefill, or the turn of the
    tool calls whose results end the chat) does not start with a thinking block, as another vendor's
    turns never do."""
    last = next((turn for turn in reversed(turns) if turn["role"] == "assistant"), None)
    if last is None:
        return True
    content = last["content"]
    blocks = content if isinstance(content, list) else [{"type": "text"}]
    continued = turns[-1] is last or any(block["type"] == "tool_use" for block in blocks)
    return not continued or blocks[0]["type"] in ("thinking", "redacted_thinking")


class _Encoder:
    """One encoding: the body being built and what it had to leave out."""

    def __init__(self, chat: Chat, *, default_max_tokens: int, structured_outputs: bool) -> None:
        self.chat = chat
        self.structured_outputs = structured_outputs
        self.dropped: list[str] = list(chat.unmapped)
        self.clamped: list[str] = []
        self.body: dict[str, Any] = {
            "model": chat.model,
            "max_tokens": chat.max_tokens if chat.max_tokens is not None else default_max_tokens,
        }

    def encode(self) -> EncodedRequest:
        chat, body = self.chat, self.body
        if (system := _system(chat)) is not None:
            body["system"] = system
        body["messages"] = _turns((i, m) for i, m in enumerate(chat.messages) if m.role != "system")
        if not body["messages"]:
            raise UnsupportedParameter(
                "messages: a Claude model needs at least one user or assistant message with content",
                param="messages",
            )
        self._tools()
        self._sampling()
        if chat.user is not None:
            body["metadata"] = {"user_id": chat.user}
        if chat.stream:
            body["stream"] = True
        forced = any(tool["name"] == FORCED_JSON_TOOL for tool in body.get("tools", ()))
        return EncodedRequest(body, tuple(self.dropped), tuple(self.clamped), unwrap_forced_json=forced)

    def _tools(self) -> None:
        chat, body = self.chat, self.body
        tools = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description is not None else {}),
                "input_schema": {"type": "object", **tool.parameters},
                **anthropic_extras(tool.extras),
            }
            for tool in chat.tools
        ]
        choice = chat.tool_choice
        mode = choice.mode if choice is not None else None
        forced_json = self._response_format()
        if forced_json is not None:
            tools.append(forced_json)
            if mode == "tool" and choice is not None:
                tool_choice: dict[str, Any] = {"type": "tool", "name": choice.name}
            elif len(tools) > 1 and mode != "none":
                tool_choice = {"type": "any"}  # a tool of the client's, or the answer
            else:
                tool_choice = {"type": "tool", "name": FORCED_JSON_TOOL}
        elif not tools:
            return
        elif mode == "none":
            tool_choice = {"type": "none"}
        elif mode == "required":
            tool_choice = {"type": "any"}
        elif mode == "tool" and choice is not None:
            tool_choice = {"type": "tool", "name": choice.name}
        else:
            tool_choice = {"type": "auto"}
        if chat.parallel_tool_calls is False and tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
        body["tools"] = tools
        if tool_choice != {"type": "auto"}:
            body["tool_choice"] = tool_choice

    def _response_format(self) -> dict[str, Any] | None:
        """Structured output in the body, or the forced tool that stands for it."""
        fmt = self.chat.response_format
        if fmt is None or fmt.kind == "text":
            return None
        schema = dict(fmt.schema or {}) if fmt.kind == "json_schema" else {"type": "object"}
        if fmt.kind == "json_schema" and self.structured_outputs:
            self.body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            return None
        if schema.get("type", "object") != "object":
            raise UnsupportedParameter(
                "response_format: this model answers in JSON through a tool, so the schema's root must "
                "be an object",
                param="response_format",
            )
        return {
            "name": FORCED_JSON_TOOL,
            "description": FORCED_JSON_DESCRIPTION,
            "input_schema": {"type": "object", **schema},
        }

    def _sampling(self) -> None:
        chat, body = self.chat, self.body
        if chat.stop:
            kept = [stop for stop in chat.stop if stop.strip()]
            if len(kept) < len(chat.stop):
                self.dropped.append("stop")
            if kept:
                body["stop_sequences"] = kept
        thinking = self._thinking(chat.reasoning)
        if thinking:
            body["thinking"] = thinking
        if chat.temperature is not None:
            if thinking and chat.temperature != 1:
                self.dropped.append("temperature")
            elif chat.temperature > 1:
                body["temperature"] = 1.0
                self.clamped.append("temperature")
            else:
                body["temperature"] = chat.temperature
        if chat.top_p is not None:
            if thinking and chat.top_p < 0.95:
                self.dropped.append("top_p")
            else:
                body["top_p"] = chat.top_p

    def _thinking(self, reasoning: Reasoning | None) -> dict[str, Any] | None:
        if reasoning is None:
            return None
        name = "reasoning_effort" if reasoning.budget_tokens is None else "reasoning"
        wanted = reasoning.budget_tokens
        if wanted is None:
            wanted = EFFORT_BUDGETS.get(reasoning.effort or "medium")
            if wanted is None:  # minimal: as little thinking as possible, i.e. none
                return None
        forced = self.body.get("tool_choice", {}).get("type") in ("any", "tool")
        room = int(self.body["max_tokens"]) - MIN_BUDGET
        if forced or room < MIN_BUDGET or not _thinking_can_continue(self.body["messages"]):
            self.dropped.append(name)
            return None
        return {"type": "enabled", "budget_tokens": max(MIN_BUDGET, min(wanted, room))}


def encode_request(chat: Chat, *, default_max_tokens: int, structured_outputs: bool) -> EncodedRequest:
    """The Messages body for `chat`; `default_max_tokens` stands in when the chat sets no `max_tokens`."""
    encoder = _Encoder(chat, default_max_tokens=default_max_tokens, structured_outputs=structured_outputs)
    return encoder.encode()
