"""The direct transport (LLM_HTTP_CLIENT=aiohttp, the default): the adapters' wire bodies sent with one
pooled aiohttp client per provider (or gateway-file deployment) and worker, no SDK in between.

`bench/sdk_overhead.py` measured ~80 µs of CPU per call this way against 760 to 1,200 µs through the official
SDK clients (their options model, `httpx2.Request` and aiohttp bridge) and ~565 µs with httpx, so httpx is
not offered. The auth and version headers are the session's, built once; the URL of each path is parsed
once; proxies from HTTPS_PROXY / NO_PROXY are resolved once, at start-up, not per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from llm_api.errors import UpstreamConnectionFailed, UpstreamError, UpstreamTimeout, upstream_error_for_status
from llm_api.services.providers._common import parse_retry_after
from llm_api.services.providers.transport import Endpoint

# What a failing connection, request or body read raises in aiohttp (its timeouts are TimeoutErrors).
TRANSPORT_FAILURES = (aiohttp.ClientError, OSError, TimeoutError)
KEEPALIVE_S = 30.0

ErrorKindOf = Callable[[Any], str | None]


def transport_failure(exc: BaseException, *, provider: str) -> UpstreamError:
    """A timeout (connect, pool wait or read), or a connection that failed or broke."""
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError and ConnectionTimeoutError too
        return UpstreamTimeout(f"{provider} did not answer in time", provider=provider)
    return UpstreamConnectionFailed(f"could not reach {provider}", provider=provider)


def status_failure(
    status: int, headers: Mapping[str, str], body: bytes, *, provider: str, error_kind_of: ErrorKindOf
) -> UpstreamError:
    """A non-2xx answer, classified like the SDK transport's status errors (the body is never quoted)."""
    try:
        kind = error_kind_of(orjson.loads(body)) if body else None
    except orjson.JSONDecodeError:
        kind = None
    return upstream_error_for_status(
        status, provider=provider, retry_after_s=parse_retry_after(headers), error_kind=kind
    )


def _env_proxy(url: URL) -> URL | None:
    try:
        proxy, _ = aiohttp.helpers.get_env_proxy_for_url(url)
    except LookupError:  # no proxy configured for this host, or NO_PROXY matches it
        return None
    return proxy


class _Chunks:
    """A streamed body's chunks as they arrive (an iterator object, not an async generator: nothing is
    left for the event loop to finalise when the relay stops reading early)."""

    __slots__ = ("_provider", "_response")

    def __init__(self, response: aiohttp.ClientResponse, provider: str) -> None:
        self._response = response
        self._provider = provider

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._response.content.readany()
        except TRANSPORT_FAILURES as exc:
            raise transport_failure(exc, provider=self._provider) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        # release() would close an unfinished body too; closing says so.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class HttpTransport:
    """`POST {base_url}{path}` with orjson bodies through one aiohttp session (created in the lifespan,
    after the fork: a session is bound to its worker's event loop)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        headers: Mapping[str, str],
        error_kind_of: ErrorKindOf,
        max_connections: int,
    ) -> None:
        self._provider = endpoint.provider
        self._base_url = endpoint.base_url.rstrip("/")
        self._error_kind_of = error_kind_of
        self._urls: dict[str, URL] = {}
        self._proxy = _env_proxy(URL(self._base_url))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=KEEPALIVE_S),
            headers=dict(headers),
            # As the SDKs' Timeout(timeout_s, connect=connect_timeout_s): no bound on the whole call (a
            # long stream is fine), one on the wait for a pooled connection, on the connect, on each read.
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=endpoint.timeout_s,
                sock_connect=endpoint.connect_timeout_s,
                sock_read=endpoint.timeout_s,
            ),
            trust_env=False,  # the proxy is resolved above, once; netrc is not read per request
            raise_for_status=False,
        )

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base_url + path)
        return url

    async def _send(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """The response once its status and headers arrived; an error status is raised, its body read."""
        try:
            response = await self._session.post(
                self._url(path),
                data=orjson.dumps(body if isinstance(body, dict) else dict(body)),
                headers=headers or None,
                params=query or None,
                proxy=self._proxy,
            )
        except TRANSPORT_FAILURES as exc:
            raise transport_failure(exc, provider=self._provider) from exc
        if 200 <= response.status < 300:
            return response
        try:
            error_body = await response.read()
        except TRANSPORT_FAILURES:
            error_body = b""  # the status alone still classifies the error
        finally:
            response.release()
        raise status_failure(
            response.status,
            response.headers,
            error_body,
            provider=self._provider,
            error_kind_of=self._error_kind_of,
        )

    async def post_json(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> bytes:
        response = await self._send(path, body, headers, query)
        try:
            return await response.read()
        except TRANSPORT_FAILURES as exc:
            raise transport_failure(exc, provider=self._provider) from exc
        finally:
            response.release()

    async def post_stream(
        self, path: str, body: Mapping[str, Any], *, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> _Chunks:
        return _Chunks(await self._send(path, body, headers, query), self._provider)

    async def aclose(self) -> None:
        await self._session.close()
