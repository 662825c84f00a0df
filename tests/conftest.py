"""Shared fixtures: one emulator and one gateway (gunicorn, 2 workers) for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_api.utils.context import RequestContext, current_request
from tests.support import Emulator, Gateway, gateway_env, run_emulator, run_gateway


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with run_emulator() as emu:
        yield emu


@pytest.fixture(scope="session")
def gateway(emulator: Emulator) -> Iterator[Gateway]:
    with run_gateway(gateway_env(emulator)) as gw:
        yield gw


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The session emulator, reset before the test."""
    emulator.reset()
    return emulator


@pytest.fixture
def context() -> Iterator[RequestContext]:
    """A request context for code that reads it (the spend engine writes its headers there)."""
    ctx = RequestContext(request_id="r", started=0.0)
    token = current_request.set(ctx)
    yield ctx
    current_request.reset(token)
