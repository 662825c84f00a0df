"""The requests each benchmark target receives: the gateway's /v1/chat, the providers' own APIs, LiteLLM."""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.gateway import LITELLM_KEY, Server
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
        {"Authorization": f"Bearer {server.client_key}"},
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


@dataclass(frozen=True)
class ApiPath:
    """One way into the gateway: a route (its wire format) and a model (the provider it calls)."""

    id: str
    route: str  # "/v1/chat", "/v1/chat/completions" or "/v1/messages"
    model: str
    kind: str  # "reference" (/v1/chat), "same vendor" (body relayed) or "translated"

    @property
    def provider(self) -> str:
        return "anthropic" if self.model.startswith("claude") else "openai"

    @property
    def label(self) -> str:
        return f"{self.route} → {self.model} ({self.kind})"


# Grouped by the provider called, each group's /v1/chat row first: the ratios are against it.
CHAT_ANTHROPIC = ApiPath("chat_anthropic", "/v1/chat", MODEL_ANTHROPIC, "reference")
CHAT_OPENAI = ApiPath("chat_openai", "/v1/chat", MODEL_OPENAI, "reference")
API_PATHS = (
    CHAT_ANTHROPIC,
    ApiPath("messages_anthropic", "/v1/messages", MODEL_ANTHROPIC, "same vendor"),
    ApiPath("completions_anthropic", "/v1/chat/completions", MODEL_ANTHROPIC, "translated"),
    CHAT_OPENAI,
    ApiPath("completions_openai", "/v1/chat/completions", MODEL_OPENAI, "same vendor"),
    ApiPath("messages_openai", "/v1/messages", MODEL_OPENAI, "translated"),
)
NEW_PATHS = tuple(path for path in API_PATHS if path.kind != "reference")
PATHS_BY_ID = {path.id: path for path in API_PATHS}


def reference_for(path: ApiPath) -> ApiPath:
    """The /v1/chat path that makes the same upstream call."""
    return CHAT_ANTHROPIC if path.provider == "anthropic" else CHAT_OPENAI


def api_target(
    server: Server, path: ApiPath, *, key: str | None = None, stream: bool = False, model: str | None = None
) -> Target:
    """`path`'s request as its usual client sends it (the anthropic SDK authenticates with x-api-key), with
    `key` or else the server's own client key (the managed key on an all-on gateway)."""
    key = key or server.client_key
    fields: dict[str, object] = {"model": model or path.model, "messages": PROMPT, "max_tokens": 64}
    if stream:
        fields["stream"] = True
    headers = {"Authorization": f"Bearer {key}"}
    if path.route == "/v1/messages":
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return Target(
        f"{server.name}-{path.id}{'-' + model if model else ''}{'-sse' if stream else ''}",
        f"{server.url}{path.route}",
        _body(**fields),
        headers,
    )


def stream_marker(path: ApiPath) -> bytes:
    """What each relayed or encoded delta of `path`'s stream contains once (checked STREAM_CHUNKS times)."""
    if path.route == "/v1/chat":
        return b'data: {"delta"'
    if path.route == "/v1/messages":
        return b"event: content_block_delta"
    return b'"delta":{"content":"'
