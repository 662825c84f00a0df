"""Stream client for the concurrency test: `python -m bench.hold spec.json` opens N streams at once (or at
`open_per_s`) and prints one JSON line: errors, how many were open at the same time, when the last one
opened, first-byte and total times.

Hand-written HTTP/1.1 on asyncio streams (uvloop when installed), one connection per stream: at 5,000
streams an HTTP client library's per-chunk cost in this process would compete with the gateway for the
machine's two cores. The body is scanned, not parsed: a stream counts its `data: {"delta"` events and ends
at the chunked encoding's last chunk.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

MARKER = b'data: {"delta"'
LAST_CHUNK = b"\r\n0\r\n\r\n"


class StreamFailed(Exception):
    pass


async def main(spec: dict[str, object]) -> dict[str, object]:
    streams = int(spec["streams"])  # type: ignore[call-overload]
    expect = int(spec["expect_deltas"])  # type: ignore[call-overload]
    open_per_s = float(spec.get("open_per_s") or 0)  # type: ignore[arg-type]
    timeout_s = float(spec.get("timeout_s") or 300)  # type: ignore[arg-type]
    open_file = str(spec.get("open_file") or "")
    parts = urlsplit(str(spec["url"]))
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = str(spec["body"]).encode()
    headers = {"Content-Type": "application/json", **spec["headers"]}  # type: ignore[dict-item]
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode() + body
    open_now = 0
    max_open = 0
    all_open_at: float | None = None
    errors: dict[str, int] = {}
    first_ms: list[float] = []
    total_ms: list[float] = []

    async def one() -> None:
        nonlocal open_now, max_open, all_open_at
        started = time.perf_counter()
        writer = None
        opened = False
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status != b"200":
                raise StreamFailed(f"status {status.decode()}")
            opened = True
            open_now += 1
            if open_now > max_open:
                max_open = open_now
                if max_open == streams:
                    all_open_at = time.time()
                    if open_file:  # for a driver that acts while every stream is held (bench.heap)
                        with open(open_file, "w") as handle:
                            handle.write(str(all_open_at))
            deltas = 0
            tail = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    raise StreamFailed("connection closed before the end of the stream")
                window = tail + data
                if deltas == 0 and MARKER in window:
                    first_ms.append((time.perf_counter() - started) * 1000)
                deltas += window.count(MARKER) - tail.count(MARKER)
                if window.endswith(LAST_CHUNK):
                    break
                tail = window[-32:]
            if deltas != expect:
                raise StreamFailed(f"got {deltas} deltas, expected {expect}")
            total_ms.append((time.perf_counter() - started) * 1000)
        except Exception as exc:  # every failure is counted by kind
            kind = type(exc).__name__ + (f": {exc}" if isinstance(exc, StreamFailed) else "")
            errors[kind] = errors.get(kind, 0) + 1
        finally:
            if opened:
                open_now -= 1
            if writer is not None:
                writer.close()

    async def paced() -> None:
        tasks = []
        for i in range(streams):
            if open_per_s > 0:
                delay = started + i / open_per_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout_s)

    started = time.perf_counter()
    await paced()
    elapsed = time.perf_counter() - started

    first_ms.sort()
    total_ms.sort()

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 1) if values else 0.0

    return {
        "streams": streams,
        "open_per_s": open_per_s or None,
        "completed": len(total_ms),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "max_open_at_once": max_open,
        "all_open_at": all_open_at,
        "wall_s": round(elapsed, 2),
        "first_delta_ms": {"p50": pct(first_ms, 50), "p99": pct(first_ms, 99)},
        "total_ms": {"p50": pct(total_ms, 50), "p99": pct(total_ms, 99), "max": pct(total_ms, 100)},
    }


def run(spec: dict[str, object]) -> dict[str, object]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency of the project
        return asyncio.run(main(spec))
    return uvloop.run(main(spec))


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(json.dumps(run(json.load(handle))))
