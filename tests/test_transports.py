"""LLM_HTTP_CLIENT: a worker on the direct transport never imports the official SDKs (~100 MiB per
worker); one on `sdk` does. The app is imported, its lifespan run and one call made to each provider in a
fresh interpreter, as a gunicorn worker would, and the interpreter reports what it has loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import CLIENT_KEY, PROVIDER_KEY, ROOT, Emulator, gateway_env

# httpx2 is not among them: genai_prices (the price table, llm_api.spend) imports it too.
SDK_MODULES = ("anthropic", "openai")
WORKER = f"""
import asyncio, json, sys

import httpx

from llm_api.main import app


async def main():
    statuses = {{}}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {{"Authorization": "Bearer {CLIENT_KEY}"}}
        base = "http://gateway"
        async with httpx.AsyncClient(transport=transport, base_url=base, headers=headers) as client:
            for model in ("claude-opus-4-5", "gpt-4o"):
                for stream in (False, True):
                    messages = [{{"role": "user", "content": "hi"}}]
                    body = {{"model": model, "stream": stream, "messages": messages}}
                    response = await client.post("/v1/chat", json=body)
                    statuses[f"{{model}} stream={{stream}}"] = response.status_code
    loaded = {{name: name in sys.modules for name in {SDK_MODULES!r}}}
    print(json.dumps({{"statuses": statuses, "loaded": loaded}}))


asyncio.run(main())
"""


@dataclass(frozen=True)
class WorkerRun:
    """What the interpreter reported, and the upstream calls the emulator received from it."""

    report: dict[str, Any]
    calls: list[dict[str, Any]]


@pytest.fixture(scope="module", params=["aiohttp", "sdk"])
def worker_run(emulator: Emulator, request: pytest.FixtureRequest) -> WorkerRun:
    emulator.reset()
    env = gateway_env(emulator, LLM_HTTP_CLIENT=request.param)
    result = subprocess.run(
        [sys.executable, "-c", WORKER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return WorkerRun(report | {"transport": request.param}, emulator.requests())


def test_only_the_sdk_transport_imports_the_sdks(worker_run: WorkerRun) -> None:
    report = worker_run.report
    assert set(report["statuses"].values()) == {200}, report
    assert report["loaded"] == dict.fromkeys(SDK_MODULES, report["transport"] == "sdk")
    calls = worker_run.calls
    assert {(r["provider"], r["status"]) for r in calls} == {("anthropic", 200), ("openai", 200)}
    assert len(calls) == 4


def test_the_provider_key_and_version_reach_the_upstream(worker_run: WorkerRun) -> None:
    key = Emulator.fingerprint(PROVIDER_KEY)
    for call in worker_run.calls:
        headers = call["headers"]
        if call["provider"] == "openai":
            assert headers["authorization"] == f"Bearer {key}"
        elif worker_run.report["transport"] == "aiohttp":
            assert headers["x-api-key"] == key  # Anthropic's documented header
            assert headers["anthropic-version"] == "2023-06-01"
        else:
            assert headers["authorization"] == f"Bearer {key}"  # what the anthropic SDK 2.x sends
            assert headers["anthropic-version"]
