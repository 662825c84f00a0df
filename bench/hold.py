"""Stream client for the concurrency test: `python -m bench.hold spec.json` opens N streams at once
and prints one JSON line: errors, how many were open at the same time, first-byte and total times."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def main(spec: dict[str, object]) -> dict[str, object]:
    streams = int(spec["streams"])  # type: ignore[arg-type]
    expect = int(spec["expect_deltas"])  # type: ignore[arg-type]
    headers = {"Content-Type": "application/json", **spec["headers"]}  # type: ignore[dict-item]
    body = str(spec["body"]).encode()
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    timeout = httpx.Timeout(120, connect=30, pool=120)
    open_now = 0
    max_open = 0
    errors: dict[str, int] = {}
    first_ms: list[float] = []
    total_ms: list[float] = []

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def one() -> None:
            nonlocal open_now, max_open
            started = time.perf_counter()
            deltas = 0
            try:
                async with client.stream("POST", str(spec["url"]), content=body, headers=headers) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"status {response.status_code}")
                    open_now += 1
                    max_open = max(max_open, open_now)
                    try:
                        async for line in response.aiter_lines():
                            if line.startswith('data: {"delta"'):
                                if deltas == 0:
                                    first_ms.append((time.perf_counter() - started) * 1000)
                                deltas += 1
                    finally:
                        open_now -= 1
                if deltas != expect:
                    raise RuntimeError(f"got {deltas} deltas, expected {expect}")
                total_ms.append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # every failure is counted by kind
                kind = type(exc).__name__ + (f": {exc}" if isinstance(exc, RuntimeError) else "")
                errors[kind] = errors.get(kind, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
        elapsed = time.perf_counter() - started

    first_ms.sort()
    total_ms.sort()

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 1) if values else 0.0

    return {
        "streams": streams,
        "completed": len(total_ms),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "max_open_at_once": max_open,
        "wall_s": round(elapsed, 2),
        "first_delta_ms": {"p50": pct(first_ms, 50), "p99": pct(first_ms, 99)},
        "total_ms": {"p50": pct(total_ms, 50), "p99": pct(total_ms, 99), "max": pct(total_ms, 100)},
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(json.dumps(asyncio.run(main(json.load(handle)))))
