"""Shared fixtures: one emulator and one gateway (gunicorn, 2 workers) for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from llm_api.utils.context import RequestContext, current_request
from tests.support import Emulator, Gateway, gateway_env, run_emulator, run_gateway

# The property tests draw the same examples on every run ("derandomize"), so `make test` fails only when
# the code changed, never because a run drew a new input. `HYPOTHESIS_PROFILE=explore` draws fresh ones on
# every run: run it after touching a codec, and pin what it finds as a plain test.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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
