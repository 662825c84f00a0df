"""The response cache against real Redis (a key prefix per test), and replaying answers as streams."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from llm_api.chat_model import (
    BlockStart,
    BlockStop,
    Chat,
    ChatResult,
    Message,
    MessageDelta,
    MessageStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolArgumentsDelta,
    ToolCall,
    Usage,
)
from llm_api.routing.cache import CacheControl, ResponseCache, enabled_for, parse_cache_control
from llm_api.routing.replay import ResultBuilder, result_to_events
from llm_api.security.keys import key_id
from tests.support import CLIENT_KEY, OTHER_CLIENT_KEY, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY_A, KEY_B = key_id(CLIENT_KEY), key_id(OTHER_CLIENT_KEY)

CHAT = Chat(
    model="smart",
    system=(Text("Be brief."),),
    messages=(Message("user", (Text("What is the capital of France?"),)),),
    tools=(Tool("lookup", "Look a city up", {"type": "object", "properties": {"city": {"type": "string"}}}),),
    max_tokens=200,
    temperature=0.2,
)
RESULT = ChatResult(
    id="msg_1",
    model="claude-opus-4-5",
    content=(
        Thinking(text="The user asks about France. " * 10, signature="sig-1"),
        Text("Paris is the capital of France. " * 12),
        ToolCall(id="call_1", name="lookup", arguments={"city": "Paris", "details": {"population": True}}),
    ),
    stop_reason="tool_use",
    usage=Usage(input_tokens=30, output_tokens=120, cache_read_tokens=5),
)


# The live Redis answers in well under a millisecond, but a first connection on a loaded machine can take
# longer than the production bound (0.25 s), which would turn a put into a skipped store: these tests
# are about what is stored, not about the bound (test_redis_down_is_a_miss_and_a_skipped_store covers
# an outage).
LIVE_REDIS_TIMEOUT_S = 5.0


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    name = f"test-cache-{uuid.uuid4().hex}"
    yield name
    keys = [key async for key in redis_client.scan_iter(match=f"{name}:*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def cache(redis_client: aioredis.Redis, prefix: str) -> ResponseCache:
    return ResponseCache(redis_client, key_prefix=prefix, ttl_s=60, timeout_s=LIVE_REDIS_TIMEOUT_S)


async def test_a_miss_then_a_hit_with_what_served_it(
    cache: ResponseCache, redis_client: aioredis.Redis
) -> None:
    assert await cache.get(CHAT, key_id=KEY_A) is None
    assert await cache.put(CHAT, RESULT, key_id=KEY_A, provider="anthropic", deployment="claude-a")
    hit = await cache.get(CHAT, key_id=KEY_A)
    assert hit is not None
    assert hit.result == RESULT
    assert (hit.provider, hit.deployment) == ("anthropic", "claude-a")
    assert 0 < await redis_client.ttl(cache.key_for(CHAT, key_id=KEY_A)) <= 60


async def test_entries_are_scoped_to_the_calling_key(cache: ResponseCache) -> None:
    await cache.put(CHAT, RESULT, key_id=KEY_A)
    assert await cache.get(CHAT, key_id=KEY_B) is None
    assert await cache.get(CHAT, key_id=None) is None


async def test_the_shared_scope_serves_every_key(redis_client: aioredis.Redis, prefix: str) -> None:
    shared = ResponseCache(redis_client, key_prefix=prefix, scope="shared", timeout_s=LIVE_REDIS_TIMEOUT_S)
    await shared.put(CHAT, RESULT, key_id=KEY_A)
    hit = await shared.get(CHAT, key_id=KEY_B)
    assert hit is not None and hit.result == RESULT


async def test_stream_or_not_is_the_same_entry_but_every_parameter_counts(cache: ResponseCache) -> None:
    await cache.put(CHAT, RESULT, key_id=KEY_A)
    assert (
        await cache.get(dataclasses.replace(CHAT, stream=True, include_usage=True), key_id=KEY_A) is not None
    )
    for changed in (
        dataclasses.replace(CHAT, model="claude-opus-4-5"),
        dataclasses.replace(CHAT, temperature=0.3),
        dataclasses.replace(CHAT, max_tokens=201),
        dataclasses.replace(CHAT, tools=()),
        dataclasses.replace(CHAT, system=()),
        dataclasses.replace(CHAT, unmapped={"seed": 7}),
        dataclasses.replace(CHAT, messages=(Message("user", (Text("What is the capital of Spain?"),)),)),
        # The same text as another kind of block is another request.
        dataclasses.replace(CHAT, messages=(Message("user", (Thinking("What is the capital of France?"),)),)),
    ):
        assert await cache.get(changed, key_id=KEY_A) is None, changed


def test_the_key_does_not_depend_on_the_order_of_json_fields(cache: ResponseCache) -> None:
    one = dataclasses.replace(
        CHAT, tools=(Tool("t", None, {"type": "object", "properties": {"a": {}, "b": {}}}),)
    )
    other = dataclasses.replace(
        CHAT, tools=(Tool("t", None, {"properties": {"b": {}, "a": {}}, "type": "object"}),)
    )
    assert cache.key_for(one, key_id=KEY_A) == cache.key_for(other, key_id=KEY_A)


async def test_no_raw_key_and_no_prompt_in_cache_keys(
    cache: ResponseCache, redis_client: aioredis.Redis, prefix: str
) -> None:
    await cache.put(CHAT, RESULT, key_id=KEY_A)
    keys = [key.decode() async for key in redis_client.scan_iter(match=f"{prefix}:*")]
    assert len(keys) == 1
    assert CLIENT_KEY not in keys[0] and "France" not in keys[0]
    assert keys[0].startswith(f"{prefix}:cache:v1:k:{KEY_A}:")
    value = await redis_client.get(keys[0])
    assert CLIENT_KEY.encode() not in value


async def test_an_entry_over_the_size_limit_is_not_stored(redis_client: aioredis.Redis, prefix: str) -> None:
    small = ResponseCache(
        redis_client, key_prefix=prefix, max_entry_bytes=1024, timeout_s=LIVE_REDIS_TIMEOUT_S
    )
    assert not await small.put(CHAT, RESULT, key_id=KEY_A)
    assert await small.get(CHAT, key_id=KEY_A) is None
    tiny = dataclasses.replace(RESULT, content=(Text("Paris."),))
    assert await small.put(CHAT, tiny, key_id=KEY_A)


async def test_an_incomplete_answer_is_never_stored(cache: ResponseCache) -> None:
    assert not await cache.put(CHAT, dataclasses.replace(RESULT, stop_reason=None), key_id=KEY_A)
    assert await cache.get(CHAT, key_id=KEY_A) is None


async def test_flush_by_key_id_then_everything(
    cache: ResponseCache, redis_client: aioredis.Redis, prefix: str
) -> None:
    other_chat = dataclasses.replace(CHAT, temperature=0.9)
    await cache.put(CHAT, RESULT, key_id=KEY_A)
    await cache.put(other_chat, RESULT, key_id=KEY_A)
    await cache.put(CHAT, RESULT, key_id=KEY_B)
    shared = ResponseCache(redis_client, key_prefix=prefix, scope="shared", timeout_s=LIVE_REDIS_TIMEOUT_S)
    await shared.put(CHAT, RESULT, key_id=None)
    assert await cache.flush(key_id=KEY_A) == 2
    assert await cache.get(CHAT, key_id=KEY_A) is None
    assert await cache.get(CHAT, key_id=KEY_B) is not None
    assert await cache.flush() == 2
    assert await cache.get(CHAT, key_id=KEY_B) is None and await shared.get(CHAT, key_id=None) is None
    with pytest.raises(ValueError, match="12 lowercase hex digits"):
        await cache.flush(key_id="*")


async def test_redis_down_is_a_miss_and_a_skipped_store() -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    cache = ResponseCache(dead, key_prefix="unused")
    assert await cache.get(CHAT, key_id=KEY_A) is None
    assert not await cache.put(CHAT, RESULT, key_id=KEY_A)
    await dead.aclose()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl(read=True, write=True)),
        ("", CacheControl(read=True, write=True)),
        ("no-cache", CacheControl(read=False, write=True)),
        ("No-Cache, max-age=0", CacheControl(read=False, write=True)),
        ('no-cache="set-cookie"', CacheControl(read=False, write=True)),
        ("no-store", CacheControl(read=False, write=False)),
        ("no-cache, NO-STORE", CacheControl(read=False, write=False)),
        ("max-age=60", CacheControl(read=True, write=True)),
    ],
)
def test_cache_control(header: str | None, expected: CacheControl) -> None:
    assert parse_cache_control(header) == expected


def test_an_aliases_setting_wins_over_cache_enabled() -> None:
    assert enabled_for(cache_enabled=False, alias_cache=None) is False
    assert enabled_for(cache_enabled=True, alias_cache=None) is True
    assert enabled_for(cache_enabled=False, alias_cache=True) is True
    assert enabled_for(cache_enabled=True, alias_cache=False) is False


def test_a_stored_answer_replays_as_a_stream_in_order() -> None:
    events = result_to_events(RESULT, chunk_chars=50)
    assert isinstance(events[0], MessageStart)
    assert events[0].usage == Usage(input_tokens=30, output_tokens=0, cache_read_tokens=5)
    assert events[-1] == MessageDelta("tool_use", RESULT.usage)
    kinds = [type(e).__name__ for e in events[1:-1]]
    thinking_deltas = len(RESULT.content[0].text) // 50 + 1  # type: ignore[union-attr]
    assert kinds[: thinking_deltas + 3] == ["BlockStart"] + ["ThinkingDelta"] * (thinking_deltas + 1) + [
        "BlockStop"
    ]
    starts = [e for e in events if isinstance(e, BlockStart)]
    assert [s.index for s in starts] == [0, 1, 2]
    assert starts[2].block == ToolCall(id="call_1", name="lookup")
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == RESULT.content[1].text  # type: ignore[union-attr]
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1  # a stream, not one lump
    assert [e.index for e in events if isinstance(e, BlockStop)] == [0, 1, 2]
    # Each block's events sit between its start and its stop.
    open_index = None
    for event in events[1:-1]:
        if isinstance(event, BlockStart):
            assert open_index is None
            open_index = event.index
        elif isinstance(event, BlockStop):
            assert event.index == open_index
            open_index = None
        else:
            assert isinstance(event, TextDelta | ThinkingDelta | ToolArgumentsDelta)
            assert event.index == open_index


def test_a_complete_stream_rebuilds_the_answer_and_an_incomplete_one_gives_nothing() -> None:
    events = result_to_events(RESULT)
    builder = ResultBuilder()
    for event in events:
        builder.add(event)
    assert builder.result() == RESULT
    for cut in (len(events) - 1, len(events) - 2, 3):  # no MessageDelta; a block left open
        partial = ResultBuilder()
        for event in events[:cut]:
            partial.add(event)
        assert partial.result() is None


def test_a_redacted_thinking_block_replays_whole() -> None:
    result = dataclasses.replace(
        RESULT, content=(Thinking(redacted="opaque"), Text("Hi")), stop_reason="end_turn"
    )
    events = result_to_events(result)
    assert events[1] == BlockStart(0, Thinking(redacted="opaque"))
    assert events[2] == BlockStop(0)
    builder = ResultBuilder()
    for event in events:
        builder.add(event)
    assert builder.result() == result
