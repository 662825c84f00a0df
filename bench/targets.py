"""The requests each benchmark target receives: the gateway's /v1/chat, the providers' own APIs, LiteLLM."""

from __future__ import annotations

import json

from bench.gateway import CLIENT_KEY, LITELLM_KEY, Server
from bench.load import Target
from bench.upstream import MODEL_ANTHROPIC, MODEL_OPENAI

PROMPT = [{"role": "user", "content": "Say hello."}]


def _body(**fields: object) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


def gateway_target(server: Server, *, model: str, stream: bool = False) -> Target:
    fields: dict[str, object] = {"model": model, "messages": PROMPT, "max_tokens": 64}
    if stream:
        fields["stream"] = True
    return Target(
        f"{server.name}-{model}{'-sse' if stream else ''}",
        f"{server.url}/v1/chat",
        _body(**fields),
        {"Authorization": f"Bearer {CLIENT_KEY}"},
    )


def direct_target(base: str, *, provider: str, stream: bool = False) -> Target:
    suffix = "-sse" if stream else ""
    if provider == "anthropic":
        return Target(
            f"direct-anthropic{suffix}",
            f"{base}/v1/messages",
            _body(
                model=MODEL_ANTHROPIC, max_tokens=64, messages=PROMPT, **({"stream": True} if stream else {})
            ),
            {"x-api-key": "bench-dummy-provider-key", "anthropic-version": "2023-06-01"},
        )
    return Target(
        f"direct-openai{suffix}",
        f"{base}/v1/chat/completions",
        _body(model=MODEL_OPENAI, messages=PROMPT, max_tokens=64, **({"stream": True} if stream else {})),
        {"Authorization": "Bearer bench-dummy-provider-key"},
    )


def litellm_target(server: Server, *, stream: bool = False) -> Target:
    return Target(
        f"{server.name}{'-sse' if stream else ''}",
        f"{server.url}/v1/chat/completions",
        _body(model=MODEL_OPENAI, messages=PROMPT, max_tokens=64, **({"stream": True} if stream else {})),
        {"Authorization": f"Bearer {LITELLM_KEY}"},
    )
