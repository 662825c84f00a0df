"""Streaming: time to first byte and whole-stream time, and many concurrent streams held open."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.load import Target, percentile
from bench.procs import ROOT, rss_kib, worker_memory

# The held streams' gateway: a listen backlog that takes 5,000 connections arriving at once (gunicorn's
# default is 2,048; the kernel caps it at net.core.somaxconn).
HOLD_ENV = {"GUNICORN_CMD_ARGS": "--backlog 8192"}


def _stats(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "mean": round(sum(ordered) / max(1, len(ordered)), 3),
    }


def sse_timing(
    target: Target, *, count: int, warmup: int = 10, expect: bytes, expect_count: int
) -> dict[str, object]:
    """`count` sequential streams on one keep-alive connection (blocking client: the same cost both ways).

    TTFB is measured to the first body bytes after the headers; total to the end of the body. A stream
    counts as an error unless it holds `expect` at least `expect_count` times.
    """
    parts = urlsplit(target.url)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **target.headers}
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    ttfb: list[float] = []
    total: list[float] = []
    errors = 0
    for i in range(warmup + count):
        started = time.perf_counter()
        try:
            conn.request("POST", parts.path, body=target.body, headers=headers)
            response = conn.getresponse()
            first = response.read1(65536)
            first_at = time.perf_counter()
            body = first + response.read()
            ended = time.perf_counter()
        except (OSError, http.client.HTTPException):
            conn.close()
            errors += 1 if i >= warmup else 0
            continue
        if i < warmup:
            continue
        if response.status != 200 or body.count(expect) < expect_count:
            errors += 1
            continue
        ttfb.append((first_at - started) * 1000)
        total.append((ended - started) * 1000)
    conn.close()
    return {"streams": count, "errors": errors, "ttfb_ms": _stats(ttfb), "total_ms": _stats(total)}


class _Probe(threading.Thread):
    """Polls GET /healthz every `interval_s` on a keep-alive connection, recording latency in ms."""

    def __init__(self, url: str, interval_s: float) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port)
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.times: list[float] = []  # wall-clock time (time.time()) of each sample
        self.errors = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(*self._address, timeout=10)
        while not self._stop_event.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.samples.append((time.perf_counter() - started) * 1000)
                    self.times.append(time.time())
                else:
                    self.errors += 1
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
            self._stop_event.wait(self.interval_s)
        conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)


def _lag(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "samples": len(ordered),
        "p50_ms": round(percentile(ordered, 50), 3),
        "p99_ms": round(percentile(ordered, 99), 3),
        "max_ms": round(ordered[-1], 3) if ordered else 0.0,
    }


def start_hold_client(
    target: Target,
    *,
    streams: int,
    expect_deltas: int,
    open_per_s: float,
    spec: Path,
    open_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m bench.hold` on a spec written to `spec`: `streams` streams opened at `open_per_s` (0: all
    at once), each expecting `expect_deltas` deltas; `open_file` is written once all are open."""
    spec.write_text(
        json.dumps(
            {
                "url": target.url,
                "body": target.body.decode(),
                "headers": target.headers,
                "streams": streams,
                "expect_deltas": expect_deltas,
                "open_per_s": open_per_s,
                "open_file": str(open_file) if open_file else "",
            }
        )
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bench.hold", str(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def hold_streams(
    target: Target,
    *,
    streams: int,
    worker_pid: int,
    health_url: str,
    expect_deltas: int,
    workdir: Path,
    open_per_s: float = 0.0,
) -> dict[str, object]:
    """Open `streams` concurrent streams from a separate client process (all at once, or `open_per_s`);
    meanwhile sample the worker's memory and the /healthz latency (event-loop lag seen from outside).

    `healthz_under_load` covers the whole run; `healthz_opening` the samples until the last stream opened,
    `healthz_held` those after it (every stream open and relaying its chunks)."""
    idle_probe = _Probe(health_url, 0.02)
    idle_probe.start()
    time.sleep(1.0)
    idle_probe.stop()
    idle_rss = rss_kib(worker_pid) or 0
    idle_memory = worker_memory(worker_pid) or {}

    client = start_hold_client(
        target,
        streams=streams,
        expect_deltas=expect_deltas,
        open_per_s=open_per_s,
        spec=workdir / "hold.json",
    )
    probe = _Probe(health_url, 0.05)
    probe.start()
    peak_rss = idle_rss
    peak_memory = dict(idle_memory)
    while client.poll() is None:
        rss = rss_kib(worker_pid) or 0
        if rss > peak_rss:
            peak_rss = rss
            peak_memory = worker_memory(worker_pid) or peak_memory
        time.sleep(0.1)
    probe.stop()
    out, err = client.communicate()
    if client.returncode != 0:
        raise RuntimeError(f"stream client failed: {err.decode(errors='replace')[-2000:]}")
    result: dict[str, object] = json.loads(out)
    after_rss = rss_kib(worker_pid) or 0
    all_open_at = result.get("all_open_at")
    cut = float(all_open_at) if isinstance(all_open_at, (int, float)) else float("inf")
    opening = [ms for ms, at in zip(probe.samples, probe.times, strict=True) if at < cut]
    held = [ms for ms, at in zip(probe.samples, probe.times, strict=True) if at >= cut]

    # Per stream held at the peak: streams that ended before the last one opened are not in the peak.
    held_at_peak = max(1, int(result.get("max_open_at_once") or streams))  # type: ignore[call-overload]

    def per_stream(key: str) -> float | None:
        if key not in idle_memory or key not in peak_memory:
            return None
        return round((peak_memory[key] - idle_memory[key]) / held_at_peak, 1)

    result.update(
        {
            "worker_rss_idle_mib": round(idle_rss / 1024, 1),
            "worker_rss_peak_mib": round(peak_rss / 1024, 1),
            "worker_rss_after_mib": round(after_rss / 1024, 1),
            "kib_per_stream": round((peak_rss - idle_rss) / held_at_peak, 1),
            # RSS/PSS/USS of the worker (KiB) idle and at the RSS peak; USS growth per stream is the
            # figure that does not depend on what the worker shares with the gunicorn master.
            "memory": {
                "idle_kib": idle_memory,
                "peak_kib": peak_memory,
                "uss_kib_per_stream": per_stream("uss"),
            },
            "healthz_idle": _lag(idle_probe.samples),
            "healthz_under_load": _lag(probe.samples),
            "healthz_opening": _lag(opening),
            "healthz_held": _lag(held),
            "healthz_errors": probe.errors,
        }
    )
    return result


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.streams [--streams N] [--open-per-s R]`: only the concurrent-streams step (one
    worker, everything on, the emulator upstream); prints the result as JSON."""
    import argparse

    from bench.harness import Plan, Run
    from bench.otlp_sink import OtlpSink
    from bench.procs import install_cleanup

    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=main.__doc__)
    parser.add_argument("--streams", type=int, default=Plan.hold_streams)
    parser.add_argument("--chunks", type=int, default=Plan.hold_chunks)
    parser.add_argument("--chunk-delay-s", type=float, default=Plan.hold_chunk_delay_s)
    parser.add_argument("--open-per-s", type=float, default=Plan.hold_open_per_s, help="0: all at once")
    args = parser.parse_args(argv)
    install_cleanup()
    plan = Plan(
        smoke=False,
        use_wrk=False,
        upstream="emulator",
        compare=False,
        hold_streams=args.streams,
        hold_chunks=args.chunks,
        hold_chunk_delay_s=args.chunk_delay_s,
        hold_open_per_s=args.open_per_s,
    )
    run = Run(plan, ROOT / "bench/.work/streams", print)
    run.sink = OtlpSink().start()
    try:
        run.concurrency()  # the same step as the full benchmark's
    finally:
        run.sink.stop()
    result = run.results["concurrency"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
