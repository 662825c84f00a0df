"""Truly concurrent load for the limit tests: one asyncio httpx client, N requests in flight at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx


async def _fire(
    base_url: str,
    key: str,
    *,
    total: int,
    concurrency: int,
    body: Callable[[int], dict[str, Any]],
    keep: Callable[[httpx.Response], Any] | None,
) -> tuple[Counter[int], list[Any]]:
    statuses: Counter[int] = Counter()
    kept: list[Any] = []
    sent = 0
    # One connection per request: this client is the bottleneck (256 tasks on one loop), so a kept-alive
    # connection can sit idle past gunicorn's keepalive (5 s, counted from the server's write) before its
    # next request, and the server's close then races that request (a ReadError on a loaded CI host).
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        # Open every connection before the first request, so the load is concurrent from the start.
        start = asyncio.Event()

        async def worker() -> None:
            nonlocal sent
            await start.wait()
            while sent < total:
                index = sent
                sent += 1
                response = await client.post("/v1/chat", json=body(index))
                statuses[response.status_code] += 1
                if keep is not None:
                    kept.append(keep(response))

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(0)
        start.set()
        await asyncio.gather(*tasks)
    return statuses, kept


def fire(
    base_url: str,
    key: str,
    *,
    total: int,
    concurrency: int = 256,
    body: Callable[[int], dict[str, Any]],
    keep: Callable[[httpx.Response], Any] | None = None,
) -> tuple[Counter[int], list[Any]]:
    """Send `total` POST /v1/chat with `concurrency` requests in flight; the status counts (and `keep`s)."""
    return asyncio.run(_fire(base_url, key, total=total, concurrency=concurrency, body=body, keep=keep))
