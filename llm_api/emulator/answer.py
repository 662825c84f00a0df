"""What the emulated model answers, provider-neutral: thinking, text blocks, tool calls, stop.

Precedence, first match wins:

1. a scripted turn (``POST /_emulator/turns``, consumed one per request);
2. a ``tool_choice`` that forces a tool: a call of it with an input built from its schema;
3. ``config.tool_calls``: ``config.text`` (unless empty) then those calls, on every request;
4. structured output (a JSON schema, or a bare JSON object): one text block of JSON;
5. a request whose last turn carries tool results: a text that quotes them;
6. ``config.text`` / ``config.blocks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from llm_api.emulator.content import plan_blocks, split_chars, split_text
from llm_api.emulator.schema_instance import instance_of
from llm_api.emulator.state import EmulatorConfig, ToolCallSpec, Turn

_MAX_QUOTE = 200


@dataclass
class PlannedToolCall:
    id: str | None  # None: the provider module gives it a fresh id
    name: str
    input: dict[str, Any]

    @property
    def arguments(self) -> str:
        return orjson.dumps(self.input).decode()

    def argument_pieces(self, parts: int = 3) -> list[str]:
        """The arguments' JSON text in up to ``parts`` non-empty pieces, in order."""
        return split_chars(self.arguments, parts)


@dataclass
class Answer:
    texts: list[list[str]] = field(default_factory=list)  # text blocks, each as stream deltas
    tool_calls: list[PlannedToolCall] = field(default_factory=list)
    thinking: list[str] | None = None  # thinking deltas, when thinking was asked for
    stop_reason: str = "end_turn"  # Anthropic's vocabulary; each provider maps it

    @property
    def text(self) -> str:
        return "".join(piece for block in self.texts for piece in block)

    def output_tokens(self) -> int:
        tools = sum(len(call.argument_pieces()) + 1 for call in self.tool_calls)
        thinking = len(self.thinking or [])
        return sum(len(block) for block in self.texts) + tools + thinking


@dataclass
class RequestFacts:
    """What the provider module read from the request that decides the answer."""

    forced_tool: tuple[str, Any] | None = None  # (name, JSON schema of its input)
    json_schema: Any = None  # the structured-output schema
    json_object: bool = False  # a JSON answer without a schema
    tool_result: str | None = None  # the text of the last turn's tool results
    thinking: bool = False
    one_tool_call: bool = False  # parallel tool use turned off: at most one call per answer
    no_tool_calls: bool = False  # tool_choice "none": configured calls are not made


def _calls(specs: list[ToolCallSpec]) -> list[PlannedToolCall]:
    return [PlannedToolCall(spec.id, spec.name, dict(spec.input)) for spec in specs]


def _with_tools(text: str | None, config: EmulatorConfig, calls: list[PlannedToolCall]) -> Answer:
    texts = [split_text(text, config.chunks)] if text else []
    return Answer(texts=texts, tool_calls=calls, stop_reason="tool_use" if calls else config.stop_reason)


def plan_answer(config: EmulatorConfig, turn: Turn | None, facts: RequestFacts) -> Answer:
    answer = _plan(config, turn, facts)
    if facts.one_tool_call:
        del answer.tool_calls[1:]
    if facts.no_tool_calls and answer.tool_calls:
        answer.tool_calls.clear()
        answer.stop_reason = config.stop_reason
        if not answer.texts:
            answer.texts = plan_blocks(config)
    if facts.thinking:
        answer.thinking = split_text(config.thinking_text, None) if config.thinking_text else []
    return answer


def _plan(config: EmulatorConfig, turn: Turn | None, facts: RequestFacts) -> Answer:
    if turn is not None:
        answer = _with_tools(turn.text, config, _calls(turn.tool_calls))
        if turn.stop_reason is not None:
            answer.stop_reason = turn.stop_reason
        return answer
    if facts.forced_tool is not None:
        name, schema = facts.forced_tool
        value = instance_of(schema if isinstance(schema, dict) else {"type": "object"})
        call = PlannedToolCall(None, name, value if isinstance(value, dict) else {})
        return Answer(tool_calls=[call], stop_reason="tool_use")
    if config.tool_calls:
        return _with_tools(config.text, config, _calls(config.tool_calls))
    if facts.json_schema is not None or facts.json_object:
        schema = (
            facts.json_schema
            if facts.json_schema is not None
            else {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
            }
        )
        text = orjson.dumps(instance_of(schema, text=config.text)).decode()
        return Answer(texts=[split_chars(text, config.chunks or 3)], stop_reason=config.stop_reason)
    if facts.tool_result is not None:
        quoted = facts.tool_result[:_MAX_QUOTE]
        return Answer(texts=[split_text(f"The tool returned: {quoted}", config.chunks)])
    return Answer(texts=plan_blocks(config), stop_reason=config.stop_reason)


def text_of(content: Any) -> str:
    """The text inside a message content (string, or blocks/parts with ``text``), joined."""
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif isinstance(part, dict) and "content" in part:
                pieces.append(text_of(part["content"]))
    return " ".join(piece for piece in pieces if piece)
