"""`python -m bench.memory [--workers 1 3]`: RSS, PSS and USS per worker, idle and after load (~1 min).

For each worker count: the gateway (everything on) behind the nginx fake upstream (the emulator without
nginx), memory read from /proc/<pid>/smaps_rollup once every worker answers, after a short c=32 load on
both providers (wrk, or the Python load generator), and 3 s later, once the quiet workers have trimmed
their heap (HEAP_TRIM_WHEN_QUIET). Prints one JSON object: per worker count the master's and each
worker's figures, and the "USS per additional worker" (the mean worker USS: what one more worker costs
the host, the pages it shares with the master and its siblings not counted).
"""

from __future__ import annotations

import argparse
import json
import time

from bench.gateway import Features
from bench.harness import Plan, Run
from bench.load import wrk_available
from bench.otlp_sink import OtlpSink
from bench.procs import ROOT, install_cleanup
from bench.targets import gateway_target
from bench.upstream import MODEL_ANTHROPIC, MODEL_OPENAI, Upstream, nginx_binary, start_emulator, start_nginx

QUIET_S = 3.0  # three of the heap trim's 1 s check intervals


def _summary(memory: dict[str, object]) -> dict[str, object]:
    workers = [w for w in memory["workers"] if w]  # type: ignore[attr-defined]
    mean = {key: round(sum(w[key] for w in workers) / max(1, len(workers)), 1) for key in workers[0]}
    return {**memory, "worker_mean": mean}


def measure(run: Run, upstream: Upstream, workers: int, load_s: float) -> dict[str, object]:
    server = run.gateway(f"memory-{workers}w", upstream, workers=workers, features=Features.all_on())
    try:
        time.sleep(1.0)  # let the lifespans finish their first writes
        idle = server.memory_mib()
        for model in (MODEL_ANTHROPIC, MODEL_OPENAI):
            run.load(gateway_target(server, model=model), 32, duration_s=load_s, server=server)
        after = server.memory_mib()
        time.sleep(QUIET_S)  # the workers hand their free heap back once quiet (llm_api/utils/heap_trim.py)
        quiet = server.memory_mib()
    finally:
        run.release(server)
    return {"idle": _summary(idle), "after_load": _summary(after), "after_quiet": _summary(quiet)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--load-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    install_cleanup()
    use_wrk = wrk_available()
    plan = Plan(smoke=False, use_wrk=use_wrk, upstream="nginx", compare=False, python_cn_total=3000)
    run = Run(plan, ROOT / "bench/.work/memory", lambda message: None)
    run.sink = OtlpSink().start()
    workdir = run.workdir / "upstream"
    upstream = start_nginx(workdir) if nginx_binary() else start_emulator(workdir)
    try:
        out = {str(n): measure(run, upstream, n, args.load_s) for n in args.workers}
    finally:
        upstream.stop()
        run.sink.stop()
    sink = run.sink
    (run.workdir / "memory.json").write_text(
        json.dumps({"otlp_protocol": sink.protocol, **out}, indent=1) + "\n"
    )
    print(f"OTLP {sink.protocol}: {sink.spans} spans, {sink.metric_exports} metric exports received")
    for workers, phases in out.items():
        for phase, memory in phases.items():
            print(f"{workers} worker(s), {phase}: " + _line(memory))


def _line(memory: dict[str, object]) -> str:
    def fmt(figures: object) -> str:
        if not isinstance(figures, dict):
            return "-"
        return "/".join(str(figures[key]) for key in ("rss_mib", "pss_mib", "uss_mib"))

    workers = " ".join(fmt(w) for w in memory["workers"])  # type: ignore[attr-defined]
    return (
        f"RSS/PSS/USS MiB: worker mean {fmt(memory['worker_mean'])}, master {fmt(memory.get('master'))}, "
        f"workers {workers}"
    )


if __name__ == "__main__":
    main()
