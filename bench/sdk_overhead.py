"""`python -m bench.sdk_overhead`: CPU per upstream call, official SDK versus raw HTTP clients and the
gateway's direct transport (LLM_HTTP_CLIENT=aiohttp), against the static nginx upstream (sequential calls
on one connection, so the figures are per-call cost, not load)."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import anthropic
import httpx
import httpx2
import openai
import orjson
import uvloop

from bench.procs import ROOT, install_cleanup
from bench.upstream import MODEL_ANTHROPIC, MODEL_OPENAI, start_nginx
from llm_api.services.providers import anthropic as anthropic_adapter
from llm_api.services.providers.http_transport import HttpTransport
from llm_api.services.providers.transport import Endpoint

CALLS = 2000
MESSAGES = [{"role": "user", "content": "Say hello."}]
warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK warns about the model name


async def _measure(name: str, call: Callable[[], Awaitable[object]]) -> dict[str, object]:
    for _ in range(100):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(CALLS):
        await call()
    cpu_us = (time.process_time() - cpu) / CALLS * 1e6
    wall_us = (time.perf_counter() - wall) / CALLS * 1e6
    print(f"{name:58s} {cpu_us:8.0f} us CPU/call {wall_us:8.0f} us wall/call", flush=True)
    return {"name": name, "cpu_us_per_call": round(cpu_us), "wall_us_per_call": round(wall_us)}


async def run(base: str) -> list[dict[str, object]]:
    body = {"model": MODEL_ANTHROPIC, "max_tokens": 64, "messages": MESSAGES}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}
    results = []
    client = anthropic.AsyncAnthropic(api_key="k", base_url=base, max_retries=0)
    results.append(await _measure("anthropic SDK messages.create", lambda: client.messages.create(**body)))
    aio = anthropic.AsyncAnthropic(
        api_key="k", base_url=base, max_retries=0, http_client=anthropic.DefaultAioHttpClient()
    )
    results.append(
        await _measure("anthropic SDK messages.create (aiohttp client)", lambda: aio.messages.create(**body))
    )
    oai = openai.AsyncOpenAI(api_key="k", base_url=f"{base}/v1", max_retries=0)
    results.append(
        await _measure(
            "openai SDK chat.completions.create",
            lambda: oai.chat.completions.create(model=MODEL_OPENAI, messages=MESSAGES, max_tokens=64),  # type: ignore[arg-type]
        )
    )
    raw2 = httpx2.AsyncClient(base_url=base)

    async def httpx2_call() -> object:
        response = await raw2.post("/v1/messages", content=orjson.dumps(body), headers=headers)
        return orjson.loads(response.content)

    results.append(await _measure("httpx2.AsyncClient.post + orjson (the SDK's transport)", httpx2_call))
    raw1 = httpx.AsyncClient(base_url=base)

    async def httpx_call() -> object:
        response = await raw1.post("/v1/messages", content=orjson.dumps(body), headers=headers)
        return orjson.loads(response.content)

    results.append(await _measure("httpx.AsyncClient.post + orjson", httpx_call))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4096, keepalive_timeout=30))

    async def aiohttp_call() -> object:
        async with session.post(f"{base}/v1/messages", data=orjson.dumps(body), headers=headers) as response:
            return orjson.loads(await response.read())

    results.append(await _measure("aiohttp.ClientSession.post + orjson", aiohttp_call))
    endpoint = Endpoint(provider="anthropic", base_url=base, api_key="k", timeout_s=30, connect_timeout_s=5)
    direct = HttpTransport(
        endpoint,
        headers=anthropic_adapter.direct_headers("k"),
        error_kind_of=anthropic_adapter.error_kind_of,
        max_connections=4096,
    )

    async def direct_call() -> object:
        answer = await direct.post_json(anthropic_adapter.MESSAGES, body, headers={}, query={})
        return orjson.loads(answer)

    results.append(await _measure("the gateway's direct transport (HttpTransport) + orjson", direct_call))
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = orjson.dumps(body)
    head = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()

    async def floor_call() -> object:
        writer.write(head + payload)
        headers = await reader.readuntil(b"\r\n\r\n")
        length = int(headers.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return orjson.loads(await reader.readexactly(length))

    results.append(await _measure("asyncio streams, hand-written HTTP/1.1 + orjson (floor)", floor_call))
    writer.close()
    for closer in (
        client.close(),
        aio.close(),
        oai.close(),
        raw2.aclose(),
        raw1.aclose(),
        session.close(),
        direct.aclose(),
    ):
        await closer
    return results


def main() -> None:
    install_cleanup()
    upstream = start_nginx(ROOT / "bench/.work/sdk/upstream")
    try:
        results = uvloop.run(run(upstream.json_url))  # the loop the gateway workers run
    finally:
        upstream.stop()
    out = ROOT / "bench/results/sdk_overhead.json"
    out.write_text(json.dumps({"calls": CALLS, "results": results}, indent=2) + "\n")
    print(f"written to {Path(out).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
