"""Canary test: prompt text, client keys and provider keys never reach any output of the gunicorn process,
on every path (success, streaming, 422, upstream 400 quoting the prompt, upstream 500 retried, mid-stream
failure, unknown key, 429), at LOG_LEVEL=DEBUG. Plus unit tests of `scrub_prompt` and the log filter."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api.utils.logging import JsonFormatter, RedactionFilter
from llm_api.utils.redaction import scrub_prompt
from tests.support import Emulator, Gateway, gateway_env, run_gateway, wait_until

RUN = uuid.uuid4().hex[:8]
PROMPT = f"prompt-canary-{RUN}"
CLIENT = f"client-canary-{RUN}"
UNKNOWN = f"unknown-canary-{RUN}"
PROVIDER = f"sk-provider-canary-{RUN}"
CANARIES = (PROMPT, CLIENT, UNKNOWN, PROVIDER)


@pytest.fixture(scope="module")
def canary_gateway(emulator: Emulator) -> Iterator[Gateway]:
    env = gateway_env(
        emulator,
        API_KEYS=CLIENT,
        ANTHROPIC_API_KEY=PROVIDER,
        OPENAI_API_KEY=PROVIDER,
        LOG_LEVEL="DEBUG",
        REDIS_URL="redis://127.0.0.1:6379/0",
        RATE_LIMIT_KEY_PREFIX=f"canary-{RUN}",
        RATE_LIMIT="40/minute",
    )
    with run_gateway(env) as gateway:
        yield gateway


def chat(
    gateway: Gateway, *, key: str = CLIENT, model: str | None = None, stream: bool = False
) -> httpx.Response:
    body: dict[str, object] = {
        "messages": [{"role": "user", "content": f"say {PROMPT} please"}],
        "stream": stream,
    }
    if model:
        body["model"] = model
    with gateway.client(key=key) as client:
        return client.post("/v1/chat", json=body)


def test_no_canary_reaches_the_output_on_any_path(canary_gateway: Gateway, emu: Emulator) -> None:
    gateway = canary_gateway
    statuses: list[int] = []
    for model in (None, "gpt-4o"):
        statuses.append(chat(gateway, model=model).status_code)  # success
        statuses.append(chat(gateway, model=model, stream=True).status_code)  # streaming
    emu.configure(text=f"the answer quotes {PROMPT}")  # the upstream answer echoes the prompt
    statuses.append(chat(gateway).status_code)
    statuses.append(chat(gateway, stream=True).status_code)
    # 422: invalid request carrying the prompt.
    with gateway.client(key=CLIENT) as client:
        invalid = client.post("/v1/chat", json={"messages": [{"role": "robot", "content": PROMPT}]})
    assert invalid.status_code == 422 and PROMPT not in invalid.text
    # Upstream 400 whose body quotes the prompt (both providers).
    for model in (None, "gpt-4o"):
        emu.fail({"status": 400, "message": f"messages.0.content: bad value {PROMPT!r}"})
        rejected = chat(gateway, model=model)
        assert rejected.status_code == 400 and PROMPT not in rejected.text
    # Upstream 500 quoting the prompt, retried, then success.
    emu.fail({"status": 500, "message": f"boom on {PROMPT}"}, {"status": 529, "message": PROMPT})
    statuses.append(chat(gateway).status_code)
    # Mid-stream failure quoting the prompt.
    emu.fail({"fail_after_chunks": 1, "message": f"stream died at {PROMPT}"})
    broken = chat(gateway, stream=True)
    assert PROMPT not in broken.text.replace(f"the answer quotes {PROMPT}", "")
    # Unknown key: 401.
    assert chat(gateway, key=UNKNOWN).status_code == 401
    assert statuses == [200] * len(statuses)

    def access_lines() -> list[dict[str, object]]:
        return [
            r
            for r in gateway.log_records()
            if r.get("logger") == "llm_api.access" and r.get("path") == "/v1/chat"
        ]

    # An access line is written once its response is complete: wait for the last one to land.
    wait_until(lambda: len(access_lines()) >= 12)
    records = gateway.log_records()
    output = gateway.output()

    for canary in CANARIES:
        assert canary not in output, f"{canary} leaked:\n" + "\n".join(
            line for line in output.splitlines() if canary in line
        )
    assert PROVIDER[3:] not in output  # not even without its sk- prefix
    # The test can fail: the output is real, at DEBUG, with the access lines and the retry warnings.
    access = [r for r in records if r.get("logger") == "llm_api.access" and r.get("path") == "/v1/chat"]
    assert len(access) == 12  # one access line per request
    assert {r["status"] for r in access} >= {200, 400, 401, 422}
    assert any(r["level"] == "DEBUG" for r in records)
    assert any(r.get("logger") == "llm_api.retry" for r in records)
    fields = {"time", "request_id", "key_id", "method", "path", "status", "model", "provider", "attempts"}
    assert all(fields <= r.keys() for r in access)
    assert all({"input_tokens", "output_tokens", "latency_ms", "ttft_ms"} <= r.keys() for r in access)
    assert any(r["stream"] and r["ttft_ms"] is not None for r in access)
    assert emu.requests(), "the upstream was reached"
    stored = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = list(stored.scan_iter(match=f"*canary-{RUN}*"))
        assert keys and not any(c.encode() in k for k in keys for c in CANARIES)
    finally:
        stored.close()


# --- scrub_prompt and the filter, in process ---------------------------------------------------------


def test_scrub_prompt_replaces_content_with_a_length_hint() -> None:
    request = {
        "model": "claude-opus-4-5",
        "messages": [
            {"role": "user", "content": PROMPT},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        ],
        "system": PROMPT,
        "headers": {"Authorization": f"Bearer {CLIENT}", "x-api-key": PROVIDER, "accept": "json"},
    }
    scrubbed = scrub_prompt(request)
    assert not any(c in repr(scrubbed) for c in CANARIES)
    assert scrubbed["messages"][0] == {"role": "user", "content": f"<{len(PROMPT)} chars>"}  # type: ignore[index]
    assert scrubbed["model"] == "claude-opus-4-5"  # type: ignore[index]
    assert scrubbed["headers"]["accept"] == "json"  # type: ignore[index]


def _emit(filter_: RedactionFilter, record: logging.LogRecord) -> str | None:
    if not filter_.filter(record):
        return None
    return JsonFormatter().format(record)


def test_filter_drops_sdk_debug_and_redacts_secrets_and_exceptions() -> None:
    redaction = RedactionFilter([CLIENT, PROVIDER])
    sdk = logging.LogRecord("openai._base_client", logging.DEBUG, "", 0, "Request options: %s", None, None)
    sdk.args = ({"json_data": {"messages": [{"content": PROMPT}]}},)
    assert _emit(redaction, sdk) is None
    httpx_debug = logging.LogRecord("httpx2", logging.DEBUG, "", 0, "send %s", (PROMPT,), None)
    assert _emit(redaction, httpx_debug) is None
    try:
        raise ValueError(f"cannot handle {PROMPT}")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    texts = [
        f"key {CLIENT} and {PROVIDER}",
        f"Authorization: Bearer {UNKNOWN}",
        f"{{'content': '{PROMPT}', 'role': 'user'}}",
        f'{{"x-api-key": "{UNKNOWN}"}}',
    ]
    for text in texts:
        line = _emit(redaction, logging.LogRecord("app", logging.WARNING, "", 0, "%s", (text,), exc_info))
        assert line is not None and not any(c in line for c in CANARIES), line
        assert '"exception_type":"ValueError"' in line
    extra = logging.LogRecord("app", logging.INFO, "", 0, "request", None, None)
    extra.body = {"messages": [{"role": "user", "content": PROMPT}]}
    line = _emit(redaction, extra)
    assert line is not None and PROMPT not in line


# Pieces of every shape the patterns look for, and of near misses: Unicode spaces, the long s and the
# Kelvin sign (which IGNORECASE matches as s and k), quotes, separators, and the configured secrets.
_PIECES = [
    *("Bearer ", "BASIC\t", "bear\u017fer", "basic\xa0", "b\u212a", "sk-", "rk-", "pk-", "Sk-", "k-", "s"),
    *("abcdefgh12", "password", "PassWord", "api_key", "Api-Key", "x-api-key", "authorization", "content"),
    *(
        "text",
        "thinking",
        ":",
        "=",
        " ",
        "\n",
        "\u3000",
        "\u2028",
        "\x1c",
        '"',
        "'",
        "\\",
        ",",
        ";",
        "}",
        "]",
    ),
    *("é", "x", "0", "-", "_", "/", CLIENT, PROVIDER, "#", "key_0a1b", "claude-opus-4-5"),
]


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), st.text(max_size=40)))
def test_redactor_text_is_the_full_substitution_chain(text: str) -> None:
    """The shortcut for texts with nothing to replace changes no result."""
    from llm_api.utils import redaction
    from llm_api.utils.redaction import REDACTED, Redactor

    for redactor in (Redactor([CLIENT, PROVIDER, "p#ss w0rd"]), Redactor()):
        expected = text
        if redactor._secrets is not None:
            expected = redactor._secrets.sub(REDACTED, expected)
        expected = redaction._BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", expected)
        expected = redaction._VENDOR_KEY.sub(REDACTED, expected)
        expected = redaction._SECRET_FIELD.sub(lambda m: f"{m.group(1)}{REDACTED}", expected)
        expected = redaction._CONTENT_FIELD.sub(lambda m: f'{m.group(1)}"{REDACTED}"', expected)
        assert redactor.text(text) == expected
