"""`python -m bench.tail`: where the c=1 tail comes from, and whether it comes back every N requests (~1 min).

One worker behind the nginx fake upstream, once with everything on and once with every feature off:
`--requests` sequential requests on one keep-alive connection (after a warm-up), each timed on the client.
Work that runs every N requests (a ledger batch, a span batch, a GC collection) makes the same requests
slow again and again: of the slowest 2 %, many share one residue modulo N. For each period from 4 to 128
the report takes the residue most of them share and how far above chance that is (a binomial z-score,
which does not favour long periods the way a plain ratio does), names the strongest period, and gives
the mean latency of every request on its residue against the mean of all.
This is how the ledger's 32-row batch was found costing every 32nd request ~1.2 ms (docs/performance.md,
"The usage ledger's batches and the c=1 p99"). Latency here is the client's whole round trip, upstream
included, not the added latency `make bench` reports.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import math
import time
from urllib.parse import urlsplit

from bench.gateway import Features
from bench.harness import Plan, Run
from bench.load import Target, percentile
from bench.otlp_sink import OtlpSink
from bench.procs import ROOT, install_cleanup
from bench.targets import gateway_target
from bench.upstream import MODEL_ANTHROPIC, start_nginx

WARMUP = 500
SLOWEST_SHARE = 0.02
PERIODS = range(4, 129)


def sequential_ms(target: Target, count: int) -> list[float]:
    """`count` requests one after another on one keep-alive connection; each one's latency in ms."""
    parts = urlsplit(target.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": "application/json", **target.headers}
    latencies = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("POST", parts.path, body=target.body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{target.name}: HTTP {response.status}")
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    return latencies


def periodicity(latencies: list[float]) -> dict[str, object]:
    """How strongly the slowest requests recur with a fixed period (see the module's docstring)."""
    ordered = sorted(latencies)
    cut = ordered[int(len(ordered) * (1 - SLOWEST_SHARE))]
    slow = [index for index, ms in enumerate(latencies) if ms > cut]
    if not slow:
        return {"slowest": 0}

    def z_score(period: int) -> tuple[float, int, int]:
        residue, hits = collections.Counter(index % period for index in slow).most_common(1)[0]
        expected = len(slow) / period
        return (hits - expected) / math.sqrt(expected * (1 - 1 / period)), residue, hits

    by_period = {period: z_score(period) for period in PERIODS}
    period = max(by_period, key=lambda p: by_period[p][0])
    strength, residue, hits = by_period[period]
    on_residue = [ms for index, ms in enumerate(latencies) if index % period == residue]
    return {
        "slowest": len(slow),
        "strongest_period": period,
        "z_score": round(strength, 1),
        "slowest_on_its_residue": hits,
        "mean_ms_on_residue": round(sum(on_residue) / len(on_residue), 3),
        "mean_ms": round(sum(latencies) / len(latencies), 3),
        "z_score_by_period": {p: round(by_period[p][0], 1) for p in (8, 16, 32, 64, 128)},
    }


def summary(latencies: list[float]) -> dict[str, object]:
    ordered = sorted(latencies)
    figures: dict[str, object] = {f"p{p:g}_ms": round(percentile(ordered, p), 3) for p in (50, 90, 99, 99.9)}
    figures["max_ms"] = round(ordered[-1], 3)
    return {"requests": len(latencies), **figures, "periodicity": periodicity(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="timed sequential requests per gateway")
    args = parser.parse_args()
    install_cleanup()
    plan = Plan(smoke=False, use_wrk=False, upstream="nginx", compare=False)
    run = Run(plan, ROOT / "bench/.work/tail", print)
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    out: dict[str, object] = {}
    try:
        for name, features in (("all_on", Features.all_on()), ("all_off", Features.all_off())):
            server = run.gateway(f"tail-{name}", upstream, features=features)
            try:
                target = gateway_target(server, model=MODEL_ANTHROPIC)
                sequential_ms(target, WARMUP)
                out[name] = summary(sequential_ms(target, args.requests))
            finally:
                run.release(server)
    finally:
        upstream.stop()
        run.sink.stop()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
