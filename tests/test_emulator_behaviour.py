"""The emulator's structured output, thinking, usage, validation of tool turns and bounded records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llm_api.emulator.state import EmulatorState, RecordLog
from tests.support import ROOT, Emulator, free_port, run_emulator, stop_process, wait_ready

USER_MSG: Any = [{"role": "user", "content": "answer in json please"}]
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    number: int


class Person(BaseModel):
    name: str
    age: int
    height_m: float
    member: bool
    tags: list[str]
    favourite: Colour
    address: Address
    nickname: str | None


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with run_emulator() as emu:
        yield emu
    output = emu.output()
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    emulator.reset()
    return emulator


@pytest.fixture
def claude(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emulator.anthropic_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
def gpt(emulator: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.openai_url, api_key="k", max_retries=0, timeout=10) as c:
        yield c


# -- structured output ----------------------------------------------------------------------------


def test_openai_parse_with_a_pydantic_model(gpt: openai.OpenAI, emu: Emulator) -> None:
    completion = gpt.chat.completions.parse(model="gpt-4o", messages=USER_MSG, response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.address, Address)
    body = emu.requests()[-1]["body"]
    assert body["response_format"]["type"] == "json_schema"
    # Streamed: the JSON arrives in several content deltas and the helper parses the whole.
    with gpt.chat.completions.stream(model="gpt-4o", messages=USER_MSG, response_format=Person) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Person)


def test_openai_json_object(gpt: openai.OpenAI, emu: Emulator) -> None:
    resp = gpt.chat.completions.create(
        model="gpt-4o", messages=USER_MSG, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(resp.choices[0].message.content or ""), dict)
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        gpt.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )


def test_anthropic_structured_output(claude: anthropic.Anthropic, emu: Emulator) -> None:
    parsed = claude.messages.parse(
        model="claude-sonnet-4-6", max_tokens=200, messages=USER_MSG, output_format=Person
    )
    assert isinstance(parsed.parsed_output, Person)
    assert "format" in emu.requests()[-1]["body"]["output_config"]
    schema = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2},
        },
        "required": ["ok", "items"],
        "$defs": {
            "item": {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 5}},
                "required": ["n"],
            }
        },
    }
    # The older beta field name works too.
    msg = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=USER_MSG,
        extra_body={"output_format": {"type": "json_schema", "schema": schema}},
    )
    assert msg.content[0].type == "text"
    value = json.loads(msg.content[0].text)
    assert value["ok"] is True and len(value["items"]) == 2 and value["items"][0]["n"] >= 5


# -- validation of tool turns and limits ------------------------------------------------------


def test_anthropic_tool_turn_errors(claude: anthropic.Anthropic, emu: Emulator) -> None:
    use = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}
    orphan: Any = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me see."},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01X", "content": "sunny"}],
        },
    ]
    with pytest.raises(anthropic.BadRequestError) as exc_info:
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=orphan)
    assert str(exc_info.value.api_message).startswith(
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01X."
    )
    unanswered: Any = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": "well?"},
    ]
    with pytest.raises(
        anthropic.BadRequestError, match="`tool_use` ids were found without `tool_result` blocks"
    ):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=unanswered)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: 64001 > 64000, which is the maximum"):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=64_001, messages=USER_MSG)
    with pytest.raises(anthropic.BadRequestError, match="not found in tools"):
        claude.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=USER_MSG,
            tools=[WEATHER_TOOL],
            tool_choice={"type": "tool", "name": "nope"},
        )
    assert all(r["status"] == 400 for r in emu.requests())


def test_openai_tool_turn_errors_and_limits(gpt: openai.OpenAI, emu: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        gpt.chat.completions.create(
            model="gpt-4o",
            messages=[*USER_MSG, {"role": "tool", "tool_call_id": "call_x", "content": "sunny"}],
        )
    assert exc_info.value.body["message"] == (  # type: ignore[index]
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
        "with 'tool_calls'."
    )
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError, match="did not have response messages: call_1"):
        gpt.chat.completions.create(
            model="gpt-4o",
            messages=[*USER_MSG, {"role": "assistant", "content": None, "tool_calls": [call]}, *USER_MSG],
        )
    with pytest.raises(openai.BadRequestError) as exc_info:
        gpt.chat.completions.create(model="gpt-4o-mini", messages=USER_MSG, max_tokens=32_000)
    assert exc_info.value.body["message"] == (  # type: ignore[index]
        "max_tokens is too large: 32000. This model supports at most 16384 completion tokens, "
        "whereas you provided 32000."
    )
    with pytest.raises(openai.BadRequestError, match="'reasoning_effort' is not supported with this model"):
        gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, reasoning_effort="low")
    resp = gpt.chat.completions.create(model="o3", messages=USER_MSG, reasoning_effort="low")
    assert resp.choices[0].message.content


def test_unknown_fields_are_accepted_and_recorded(claude: anthropic.Anthropic, emu: Emulator) -> None:
    extra = {"top_k": 5, "metadata": {"user_id": "u1"}, "brand_new_feature": {"x": [1, 2.5, None]}}
    claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        extra_body=extra,
        extra_headers={"anthropic-beta": "some-beta-2026-01-01"},
        extra_query={"beta": "true"},
    )
    [rec] = emu.requests()
    assert {k: rec["body"][k] for k in extra} == extra
    assert rec["body"]["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert rec["headers"]["anthropic-beta"] == "some-beta-2026-01-01"
    assert rec["query"] == "beta=true" and rec["method"] == "POST"
    assert rec["headers"]["authorization"] == f"Bearer {Emulator.fingerprint('k')}"
    assert "Bearer k" not in json.dumps(rec)


# -- thinking -------------------------------------------------------------------------------------


def test_anthropic_thinking_json_and_stream(claude: anthropic.Anthropic, emu: Emulator) -> None:
    emu.configure(thinking_text="Hmm, Paris.")
    msg = claude.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=4000,
        messages=USER_MSG,
        thinking={"type": "enabled", "budget_tokens": 2000},
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    thinking = msg.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "Hmm, Paris." and thinking.signature
    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=4000, messages=USER_MSG, thinking={"type": "adaptive"}
    ) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in kinds and "signature_delta" in kinds
    assert final.content[0].type == "thinking" and final.content[0].signature
    # Signed thinking blocks are accepted back; unsigned ones are refused.
    turn: Any = [
        *USER_MSG,
        {"role": "assistant", "content": final.content},
        {"role": "user", "content": "more"},
    ]
    claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=4000, messages=turn, thinking={"type": "adaptive"}
    )
    turn[1] = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "x"}, {"type": "text", "text": "y"}],
    }
    with pytest.raises(
        anthropic.BadRequestError, match=r"messages\.1\.content\.0\.thinking\.signature: Field required"
    ):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=4000, messages=turn)
    with pytest.raises(anthropic.BadRequestError, match="greater than or equal to 1024"):
        claude.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=4000,
            messages=USER_MSG,
            thinking={"type": "enabled", "budget_tokens": 10},
        )


# -- usage ----------------------------------------------------------------------------------------


def test_usage_chunk_only_when_asked_and_cache_tokens(
    gpt: openai.OpenAI, claude: anthropic.Anthropic, emu: Emulator
) -> None:
    emu.configure(cached_tokens=40, cache_creation_tokens=7)
    chunks = list(gpt.chat.completions.create(model="gpt-4o", messages=USER_MSG, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    chunks = list(
        gpt.chat.completions.create(
            model="gpt-4o", messages=USER_MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (
        usage.prompt_tokens == 44
        and usage.prompt_tokens_details
        and usage.prompt_tokens_details.cached_tokens == 40
    )
    msg = claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=USER_MSG)
    assert (
        msg.usage.input_tokens,
        msg.usage.cache_read_input_tokens,
        msg.usage.cache_creation_input_tokens,
    ) == (4, 40, 7)


# -- bounded records ------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_records_stay_bounded(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "emulator.log"
    env = {**os.environ, "EMULATOR_MAX_RECORDS": "25", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llm_api.emulator", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/_emulator/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_ready(proc, ready, name="emulator", output=log.read_text, timeout=20)
        big = "word " * 40_000  # ~200 KB per request
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": big}]}
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer k"}, timeout=10) as client:
            for _ in range(30):
                client.post("/v1/chat/completions", json=body).raise_for_status()
            rss_before = _rss_kb(proc.pid)
            for _ in range(300):  # ~60 MB more through the emulator
                client.post("/v1/chat/completions", json=body).raise_for_status()
            rss_after = _rss_kb(proc.pid)
            stats = client.get("/_emulator/stats").json()
            recs = client.get("/_emulator/requests").json()
        assert stats["requests"]["openai"] == 330 and stats["recorded"] == 25 == len(recs)
        assert [r["id"] for r in recs] == list(range(306, 331))  # the newest ones
        assert rss_after - rss_before < 20_000, (rss_before, rss_after)
    finally:
        stop_process(proc)


# -- no input makes the emulator fail ----------------------------------------------------------

_scalar = st.none() | st.booleans() | st.integers(-5, 70_000) | st.text(max_size=6)
_json = st.recursive(
    _scalar | st.floats(allow_nan=False, allow_infinity=False),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)
_BLOCK_TYPES = ["text", "image", "image_url", "tool_use", "tool_result", "thinking", "redacted_thinking", "x"]
_BLOCK_KEYS = [
    "type",
    "text",
    "source",
    "image_url",
    "id",
    "name",
    "input",
    "tool_use_id",
    "content",
    "signature",
]
_block = st.fixed_dictionaries(
    {"type": st.sampled_from(_BLOCK_TYPES)},
    optional={key: _json for key in _BLOCK_KEYS[1:]},
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"])},
    optional={
        "content": st.one_of(st.text(max_size=6), st.lists(_block, max_size=3), _json),
        "tool_calls": _json,
        "tool_call_id": _json,
    },
)
_FIELDS = [
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "output_format",
    "response_format",
    "temperature",
    "reasoning_effort",
    "max_completion_tokens",
    "stream_options",
    "parallel_tool_calls",
    "stream",
]
_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["claude-sonnet-4-6", "gpt-4o-mini", "o3", "claude-opus-4-7"]) | _json,
        "messages": st.lists(_message, max_size=4) | _json,
    },
    optional={key: _json for key in _FIELDS},
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=_bodies, path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions"])
)
def test_random_bodies_never_fail_the_emulator(emulator: Emulator, body: dict[str, Any], path: str) -> None:
    response = httpx.post(
        f"{emulator.base_url}{path}", json=body, headers={"x-api-key": "k", "Authorization": "Bearer k"}
    )
    assert response.status_code in (200, 400), response.text


def test_record_log_caps_bytes_but_keeps_the_newest() -> None:
    log = RecordLog(max_records=10, max_bytes=1000)
    state = EmulatorState(records=log)

    def add(size: int) -> None:
        state.new_record("openai", method="POST", path="/", query="", body=None, body_bytes=size, headers={})

    for _ in range(5):
        add(300)
    assert [r.id for r in log] == [3, 4, 5] and log.body_bytes == 900
    add(5000)
    assert [r.id for r in log] == [6] and log.body_bytes == 5000
    for _ in range(20):
        add(1)
    assert len(log) == 10 and state.stats()["requests"]["openai"] == 26
