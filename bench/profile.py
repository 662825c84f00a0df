"""Where a worker spends its CPU under load: py-spy samples one gateway worker while wrk drives c=32."""

from __future__ import annotations

import gzip
import re
import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING

from bench.gateway import Features
from bench.load import _lua_script
from bench.procs import ROOT
from bench.targets import gateway_target
from bench.upstream import MODEL_ANTHROPIC, Upstream

if TYPE_CHECKING:
    from bench.harness import Run

PY_SPY = ROOT / "bench" / ".tools-venv" / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match["func"], match["file"]


def bucket(path: str) -> str:
    """The package a source file belongs to: site-packages' top folder, llm_api, or the stdlib module."""
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "python3." in path and "/lib/" in path:
        path = path.split("/lib/python3.", 1)[1].split("/", 1)[-1]
    if path.startswith("llm_api/") or "/llm_api/" in path:
        return "llm_api." + path.split("llm_api/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return path.split("/", 1)[0].removesuffix(".py") or "?"


OTEL_PACKAGES = frozenset(
    {"trace", "metrics", "attributes", "asgi", "common", "sdk", "instrumentation", "util", "context",
     "semconv", "propagate", "exporter", "proto", "opentelemetry", "_logs", "baggage", "resources"}
)  # fmt: skip
# Inclusive shares of the layers worth naming: any frame of the stack whose text starts with the prefix.
LAYERS = {
    "provider SDK client call (AsyncAPIClient.post)": "AsyncAPIClient.post ",
    "httpx2 AsyncClient.send": "AsyncClient.send ",
    "httpcore2 connection pool": "AsyncConnectionPool.handle_async_request ",
    "SDK request building (_build_request)": "BaseClient._build_request ",
    "retry policy (RetryPolicy.call)": "RetryPolicy.call ",
    "auth + rate limit dependency (require_client_key)": "require_client_key ",
    "client identification (require_client)": "require_client ",
    "budget reservation (SpendGuard.reserve)": "SpendGuard.reserve ",
    "budget settlement (SpendGuard.settle)": "SpendGuard.settle ",
    "span export thread (BatchProcessor.worker)": "BatchProcessor.worker ",
    "OTLP span encoding (encode_spans)": "encode_spans ",
    "FastAPI dependency solving (solve_dependencies)": "solve_dependencies ",
    "access log (RequestContextMiddleware._log_access)": "RequestContextMiddleware._log_access ",
}


def summarise(raw: str, *, top: int = 25) -> dict[str, object]:
    """Self and inclusive sample shares per function and per package from py-spy's collapsed stacks."""
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    otel_self = 0
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_split(f) for f in stack.split(";")]
        frames = [f for f in frames if f[1]]  # drop the thread/process header frames
        if not frames:
            continue
        func, path = frames[-1]
        if bucket(path) in OTEL_PACKAGES:
            otel_self += count
        for layer, prefix in LAYERS.items():
            if any(f.startswith(prefix) for f in stack.split(";")):
                layers[layer] += count
        self_fn[f"{func} ({bucket(path)})"] += count
        self_pkg[bucket(path)] += count
        for name in {f"{fn} ({bucket(p)})" for fn, p in frames}:
            incl_fn[name] += count
        for pkg in {bucket(p) for _, p in frames}:
            incl_pkg[pkg] += count

    def share(counter: Counter[str]) -> list[list[object]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "self_by_function_pct": share(self_fn),
        "inclusive_by_function_pct": share(incl_fn),
        "self_by_package_pct": share(self_pkg),
        "inclusive_by_package_pct": share(incl_pkg),
        "layers_inclusive_pct": share(layers),
        "opentelemetry_self_pct": round(100 * otel_self / total, 1) if total else 0.0,
    }


def profile_gateway(run: Run, upstream: Upstream) -> dict[str, object] | None:
    if not PY_SPY.exists():
        run.log("- py-spy missing (bench/.tools-venv): profile skipped")
        return None

    seconds = run.plan.profile_s
    c = run.plan.concurrencies[0]
    server = run.gateway("gateway-profile-1w", upstream, features=Features.all_on())
    out_dir = run.workdir / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        target = gateway_target(server, model=MODEL_ANTHROPIC)
        script = out_dir / "profile.lua"
        script.write_text(_lua_script(target))
        run.log(f"- profiling one worker with py-spy for {seconds:g} s under wrk c={c}")
        wrk = subprocess.Popen(
            ["wrk", "-t1", f"-c{c}", f"-d{seconds + 4:g}s", "-s", str(script), target.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        time.sleep(2)
        raw_path = out_dir / "gateway.collapsed"
        pid = str(server.workers[0])
        # --gil: only samples holding the GIL, i.e. Python CPU work (idle waits and I/O drop out).
        argv = [str(PY_SPY), "record", "--pid", pid, "--duration", f"{seconds:g}", "--rate", "100"]
        argv += ["--format", "raw", "--output", str(raw_path), "--gil"]
        spy = subprocess.run(argv, capture_output=True, text=True, check=False)
        wrk.wait(timeout=seconds + 60)
        if spy.returncode != 0 or not raw_path.exists():
            run.log(f"  py-spy failed: {spy.stderr[-500:]}")
            return None
        summary = summarise(raw_path.read_text())
        summary["collapsed_stacks"] = str(raw_path.relative_to(ROOT))
        summary["concurrency"] = c
        results_dir = ROOT / "bench" / "results"
        if not run.plan.smoke:
            with gzip.open(results_dir / "profile.collapsed.gz", "wt") as handle:
                handle.write(raw_path.read_text())
            summary["collapsed_stacks"] = "bench/results/profile.collapsed.gz"
        for name, pct in summary["self_by_package_pct"][:8]:  # type: ignore[index]
            run.log(f"  self {pct:5.1f}%  {name}")
        return summary
    finally:
        run.release(server)


def main() -> None:
    """`python -m bench.profile`: only the profile (nginx upstream, OTLP sink, one gateway worker)."""
    from bench.harness import Plan, Run
    from bench.otlp_sink import OtlpSink
    from bench.procs import install_cleanup
    from bench.upstream import start_nginx

    install_cleanup()
    run = Run(
        Plan(smoke=False, use_wrk=True, upstream="nginx", compare=False), ROOT / "bench/.work/profile", print
    )
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    try:
        summary = profile_gateway(run, upstream)
    finally:
        upstream.stop()
        run.sink.stop()
    import json

    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
