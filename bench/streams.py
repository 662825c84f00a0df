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
from bench.procs import ROOT, rss_kib


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


def hold_streams(
    target: Target, *, streams: int, worker_pid: int, health_url: str, expect_deltas: int, workdir: Path
) -> dict[str, object]:
    """Open `streams` concurrent streams from a separate client process; meanwhile sample the worker's
    RSS and the /healthz latency (event-loop lag seen from outside)."""
    idle_probe = _Probe(health_url, 0.02)
    idle_probe.start()
    time.sleep(1.0)
    idle_probe.stop()
    idle_rss = rss_kib(worker_pid) or 0

    spec = workdir / "hold.json"
    spec.write_text(
        json.dumps(
            {
                "url": target.url,
                "body": target.body.decode(),
                "headers": target.headers,
                "streams": streams,
                "expect_deltas": expect_deltas,
            }
        )
    )
    client = subprocess.Popen(
        [sys.executable, "-m", "bench.hold", str(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    probe = _Probe(health_url, 0.05)
    probe.start()
    peak_rss = idle_rss
    while client.poll() is None:
        peak_rss = max(peak_rss, rss_kib(worker_pid) or 0)
        time.sleep(0.1)
    probe.stop()
    out, err = client.communicate()
    if client.returncode != 0:
        raise RuntimeError(f"stream client failed: {err.decode(errors='replace')[-2000:]}")
    result: dict[str, object] = json.loads(out)
    after_rss = rss_kib(worker_pid) or 0
    result.update(
        {
            "worker_rss_idle_mib": round(idle_rss / 1024, 1),
            "worker_rss_peak_mib": round(peak_rss / 1024, 1),
            "worker_rss_after_mib": round(after_rss / 1024, 1),
            "kib_per_stream": round((peak_rss - idle_rss) / max(1, streams), 1),
            "healthz_idle": _lag(idle_probe.samples),
            "healthz_under_load": _lag(probe.samples),
            "healthz_errors": probe.errors,
        }
    )
    return result
