"""The upstream transports (LLM_HTTP_CLIENT) the retry and error matrix runs on, and a gateway on each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.support import Emulator, Gateway, gateway_env, run_gateway, session_transport

# The direct pooled client (default) and the official SDK clients.
TRANSPORTS = ("aiohttp", "sdk")


@contextmanager
def gateway_on(transport: str, *, session: Gateway, emulator: Emulator) -> Iterator[Gateway]:
    """The session gateway when it already runs `transport`, else one of its own (one worker)."""
    if transport == session_transport():
        yield session
        return
    with run_gateway(gateway_env(emulator, LLM_HTTP_CLIENT=transport, WEB_CONCURRENCY="1")) as gateway:
        yield gateway
