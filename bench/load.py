"""Request load: wrk with a Lua script (POST body, JSON summary from a done() hook), or a Python fallback."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PERCENTILES = ("50", "75", "90", "99", "99.9")

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local parts = {{}}
  for _, p in ipairs({{50, 75, 90, 99, 99.9}}) do
    parts[#parts + 1] = string.format('"%s": %.0f', tostring(p), latency:percentile(p))
  end
  io.write(string.format(
    'BENCH_JSON {{"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, ' ..
    '"errors": {{"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}}, ' ..
    '"latency_us": {{"min": %.0f, "max": %.0f, "mean": %.3f, "stdev": %.3f, %s}}}}\\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(parts, ", ")))
end
"""


@dataclass(frozen=True)
class Target:
    """One POST endpoint with its body and headers."""

    name: str
    url: str
    body: bytes
    headers: dict[str, str]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua_script(target: Target) -> str:
    body = target.body.decode()
    if "]==]" in body:
        raise ValueError("request body cannot be embedded in the Lua script")
    headers = {"Content-Type": "application/json", **target.headers}
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    return _LUA.format(body=body, headers=lines)


def _summary(
    requests: int, errors: int, duration_s: float, latencies_ms: dict[str, float]
) -> dict[str, object]:
    return {
        "requests": requests,
        "errors": errors,
        "duration_s": round(duration_s, 3),
        "rps": round(requests / duration_s, 1) if duration_s > 0 else 0.0,
        "latency_ms": latencies_ms,
    }


def run_wrk(target: Target, *, connections: int, duration_s: float, workdir: Path) -> dict[str, object]:
    """`wrk -t1 -c<n> -d<s> --latency -s script.lua URL`; the done() hook prints one JSON line."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / f"{target.name}.lua"
    script.write_text(_lua_script(target))
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "30s",
        "-s", str(script), target.url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(int(v) for v in raw["errors"].values())
    lat = raw["latency_us"]
    latencies = {p: round(lat[p] / 1000, 3) for p in PERCENTILES}
    latencies.update(mean=round(lat["mean"] / 1000, 3), max=round(lat["max"] / 1000, 3))
    result = _summary(int(raw["requests"]), errors, raw["duration_us"] / 1e6, latencies)
    result["tool"] = "wrk"
    result["error_detail"] = raw["errors"]
    return result


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


async def _python_load(target: Target, *, connections: int, total: int) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    remaining = total
    headers = {"Content-Type": "application/json", **target.headers}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    response = await client.post(target.url, content=target.body, headers=headers)
                    ok = response.status_code < 400
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += 0 if ok else 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    summary = {p: round(percentile(latencies, float(p)), 3) for p in PERCENTILES}
    summary.update(
        mean=round(sum(latencies) / max(1, len(latencies)), 3),
        max=round(latencies[-1] if latencies else 0, 3),
    )
    return _summary(len(latencies), errors, elapsed, summary)


def run_python(target: Target, *, connections: int, total: int) -> dict[str, object]:
    """A fixed number of requests from an asyncio client (used when wrk is absent, and in smoke mode)."""
    result = asyncio.run(_python_load(target, connections=connections, total=total))
    result["tool"] = "python"
    return result


def run_load(
    target: Target, *, connections: int, duration_s: float, total: int, use_wrk: bool, workdir: Path
) -> dict[str, object]:
    if use_wrk:
        result = run_wrk(target, connections=connections, duration_s=duration_s, workdir=workdir)
    else:
        result = run_python(target, connections=connections, total=total)
    result["connections"] = connections
    return result
