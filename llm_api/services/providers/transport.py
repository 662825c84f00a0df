"""What an adapter needs from the HTTP layer below it: POST a JSON body, get the answer's bytes or its
byte stream. Two implementations, chosen by LLM_HTTP_CLIENT and built once per worker by the registry:

- `http_transport.HttpTransport` (`aiohttp`, the default): one pooled aiohttp client per provider, with
  the auth and version headers built once; the SDKs are never imported.
- `sdk_transport` (`sdk`): the official SDK clients' `post()`, imported only when selected.

Both raise only `errors.UpstreamError` subclasses, classified alike: a non-2xx answer by its status, its
`Retry-After` and the `error.type` of its JSON body (never quoted); a timeout as `UpstreamTimeout`; any
other transport failure as `UpstreamConnectionFailed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class UpstreamStream(Protocol):
    """A streamed 2xx answer: its body's chunks as they arrive, then the connection handed back."""

    def __aiter__(self) -> UpstreamStream: ...

    async def __anext__(self) -> bytes:
        """The next chunk; a transport failure while reading is raised as an `UpstreamError`."""
        ...

    async def aclose(self) -> None:
        """Release the connection: back to the pool if the body was read to its end, else closed, so a
        client that hangs up stops the upstream from generating (and billing) any further."""
        ...


class Transport(Protocol):
    """POSTs JSON bodies to one provider (or one gateway-file deployment)."""

    async def post_json(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> bytes:
        """The body of a 2xx answer to `POST {base_url}{path}`."""
        ...

    async def post_stream(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> UpstreamStream:
        """The body stream of a 2xx answer (an error status is raised before any chunk, as by `post_json`)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one provider or deployment is called, with what key, and how long each step may take.

    `base_url` is joined with the adapters' paths as the SDKs do: Anthropic's without `/v1` (the path is
    `/v1/messages`), OpenAI's with it (the path is `/chat/completions`). `timeout_s` bounds the wait for a
    pooled connection and each read (between stream chunks included), `connect_timeout_s` the TCP and TLS
    connect, as the SDKs' `Timeout(timeout_s, connect=connect_timeout_s)`.
    """

    provider: str
    base_url: str
    api_key: str | None
    timeout_s: float
    connect_timeout_s: float
