"""The SDK transport (LLM_HTTP_CLIENT=sdk): the official `anthropic` and `openai` clients' `post()`.

Imported only when selected (the registry imports it lazily): the two SDKs are ~100 MiB per worker. The
client sends the request (auth, base URL, timeouts) over the SDKs' aiohttp bridge and hands back the raw
`httpx2.Response`; its exceptions are translated here into the same errors as the direct transport's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai

from llm_api.chat_model import EMPTY
from llm_api.errors import UpstreamConnectionFailed, UpstreamError, UpstreamTimeout, upstream_error_for_status
from llm_api.services.providers._common import parse_retry_after, unusable_response
from llm_api.services.providers.openai import KEYLESS
from llm_api.services.providers.transport import Endpoint


def is_timeout(exc: BaseException) -> bool:
    """Did this transport failure come from a timeout (rather than a refused or dropped connection)?

    The SDKs' aiohttp bridge maps every `aiohttp.ClientConnectionError`, a server closing the connection
    included, to a connect *timeout*; the original aiohttp error in the cause chain tells them apart.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ServerTimeoutError | TimeoutError):
            return True
        if isinstance(current, aiohttp.ClientConnectionError):
            return False
        current = current.__cause__ or current.__context__
    return isinstance(exc, httpx2.TimeoutException) or type(exc).__name__ == "APITimeoutError"


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """An SDK's exception classes (both official SDKs name them alike)."""

    connection_error: type[Exception]
    status_error: type[Exception]


ANTHROPIC_ERRORS = SdkErrors(anthropic.APIConnectionError, anthropic.APIStatusError)
OPENAI_ERRORS = SdkErrors(openai.APIConnectionError, openai.APIStatusError)


def translate_sdk_error(exc: BaseException, *, provider: str, sdk: SdkErrors) -> UpstreamError:
    """Map an SDK or transport exception to the gateway's hierarchy (never quoting the raw body)."""
    if isinstance(exc, sdk.connection_error | httpx2.TransportError):  # timeouts included
        if is_timeout(exc):
            return UpstreamTimeout(f"{provider} did not answer in time", provider=provider)
        return UpstreamConnectionFailed(f"could not reach {provider}", provider=provider)
    if isinstance(exc, sdk.status_error):
        kind = getattr(exc, "type", None)
        response: httpx2.Response = getattr(exc, "response")  # noqa: B009 - typed by the SDK, not here
        return upstream_error_for_status(
            response.status_code,
            provider=provider,
            retry_after_s=parse_retry_after(response.headers),
            error_kind=kind if isinstance(kind, str) else None,
        )
    return unusable_response(provider)


class _SdkStream:
    """A streamed `httpx2.Response`'s chunks; reading errors come out translated."""

    __slots__ = ("_chunks", "_provider", "_response", "_sdk")

    def __init__(self, response: httpx2.Response, *, provider: str, sdk: SdkErrors) -> None:
        self._response = response
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._provider = provider
        self._sdk = sdk

    def __aiter__(self) -> _SdkStream:
        return self

    async def __anext__(self) -> bytes:
        # Reading a raw body raises only httpx2 errors (the SDKs' aiohttp bridge maps aiohttp's to them).
        try:
            return await anext(self._chunks)
        except httpx2.HTTPError as exc:
            raise translate_sdk_error(exc, provider=self._provider, sdk=self._sdk) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


class _SdkTransport:
    """What both SDK clients share: `post(path, cast_to=httpx2.Response)` and its error translation."""

    provider: str
    sdk: SdkErrors
    # AsyncAnthropic or AsyncOpenAI: the same `post()` (their RequestOptions are distinct TypedDicts).
    _client: Any
    # Options every call passes, as the SDK's own resource methods do.
    _base_options: Mapping[str, Any] = EMPTY

    async def _post(
        self,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        query: Mapping[str, str],
        *,
        stream: bool,
    ) -> httpx2.Response:
        options = dict(self._base_options)
        if headers:
            options["headers"] = dict(headers)
        if query:
            options["params"] = dict(query)
        response: httpx2.Response = await self._client.post(
            path, body=body, cast_to=httpx2.Response, options=options, stream=stream
        )
        return response

    async def aclose(self) -> None:
        await self._client.close()

    async def _send(
        self,
        path: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        query: Mapping[str, str],
        *,
        stream: bool,
    ) -> httpx2.Response:
        try:
            return await self._post(path, body, headers, query, stream=stream)
        except (anthropic.APIError, openai.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc, provider=self.provider, sdk=self.sdk) from exc

    async def post_json(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> bytes:
        return (await self._send(path, body, headers, query, stream=False)).content

    async def post_stream(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> _SdkStream:
        response = await self._send(path, body, headers, query, stream=True)
        return _SdkStream(response, provider=self.provider, sdk=self.sdk)


class AnthropicSdkTransport(_SdkTransport):
    """`AsyncAnthropic.post` (its own retries and its own tracing off)."""

    sdk = ANTHROPIC_ERRORS

    def __init__(self, endpoint: Endpoint, *, max_connections: int) -> None:
        self.provider = endpoint.provider
        self._client = anthropic.AsyncAnthropic(
            # A keyless deployment still needs a string: the SDK refuses None.
            api_key=endpoint.api_key or KEYLESS,
            base_url=endpoint.base_url,
            timeout=anthropic.Timeout(endpoint.timeout_s, connect=endpoint.connect_timeout_s),
            max_retries=0,
            http_client=_http_client(endpoint, anthropic.DefaultAioHttpClient, max_connections),
            # The SDK's own spans: off whatever ANTHROPIC_OPEN_TELEMETRY_* says (its "content" mode records
            # messages); the gateway's GenAI span already covers every call.
            open_telemetry=False,
        )


class OpenAISdkTransport(_SdkTransport):
    """`AsyncOpenAI.post`, with the bearer auth `chat.completions.create` asks for."""

    sdk = OPENAI_ERRORS
    # What `chat.completions.create` passes to the client's `post`.
    _base_options: Mapping[str, Any] = MappingProxyType({"security": {"bearer_auth": True}})

    def __init__(self, endpoint: Endpoint, *, max_connections: int) -> None:
        self.provider = endpoint.provider
        self._client = openai.AsyncOpenAI(
            api_key=endpoint.api_key or KEYLESS,  # openai-compatible servers often take no key
            base_url=endpoint.base_url,
            timeout=openai.Timeout(endpoint.timeout_s, connect=endpoint.connect_timeout_s),
            max_retries=0,
            http_client=_http_client(endpoint, openai.DefaultAioHttpClient, max_connections),
        )


def _http_client(
    endpoint: Endpoint, aiohttp_client: type[httpx2.AsyncClient], max_connections: int
) -> httpx2.AsyncClient:
    """The SDK's aiohttp bridge (less CPU per call than httpx2's own pool, bench/sdk_overhead.py), with a
    pool large enough for thousands of concurrent streams per worker."""
    limits = httpx2.Limits(
        max_connections=max_connections,
        max_keepalive_connections=min(max_connections, 256),
        keepalive_expiry=30,
    )
    timeout = httpx2.Timeout(endpoint.timeout_s, connect=endpoint.connect_timeout_s)
    return aiohttp_client(limits=limits, timeout=timeout, follow_redirects=True)
