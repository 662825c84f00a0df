"""`python -m bench.garbage`: what each request leaves for the cyclic GC, per API path (~1.5 min).

One worker with everything on behind the nginx fake upstream, started with `bench/garbage_hook` on its
PYTHONPATH. Per API path: a warm-up, then a window in which the worker times its GC collections
(`gc.callbacks`), then one in which it keeps whatever the cyclic GC finds (`gc.DEBUG_SAVEALL`). A request
that leaves nothing in a reference cycle is freed the moment it ends; one that does keeps its objects
until a collection finds them, and makes those collections more frequent and longer (the disconnect
watcher's and the SSE keep-alive's cycles, fixed in 06c907e, were ~52 objects per JSON request and ~72 per
stream). `--sse` streams instead (300 sequential streams per window), `-c` sets the JSON concurrency.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gateway import Features, Server
from bench.harness import Plan, Run
from bench.otlp_sink import OtlpSink
from bench.procs import ROOT, install_cleanup
from bench.streams import sse_timing
from bench.targets import API_PATHS, api_target
from bench.upstream import STREAM_CHUNKS as CHUNKS
from bench.upstream import start_nginx

HOOK = ROOT / "bench" / "garbage_hook"
PROBE_TIMEOUT_S = 30.0


def _wait_for_files(paths: list[Path], what: str) -> None:
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while not all(path.exists() for path in paths):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} from the probe: is {HOOK} on the worker's path?")
        time.sleep(0.02)


def _window(
    probe: Path, window: int, mode: str, server: Server, drive: Callable[[], int]
) -> tuple[int, dict[str, Any]]:
    (probe / f"mode.{window}").write_text(mode)
    (probe / f"start.{window}").touch()
    _wait_for_files([probe / f"ready.{window}.{pid}" for pid in server.workers], f"start of window {window}")
    requests = drive()
    (probe / f"stop.{window}").touch()
    results = [probe / f"result.{window}.{pid}.json" for pid in server.workers]
    _wait_for_files(results, f"result for window {window}")
    return requests, json.loads(results[0].read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sse", action="store_true", help="stream (300 sequential streams per window)")
    parser.add_argument("-c", "--concurrency", type=int, default=32, help="JSON load concurrency")
    parser.add_argument("--seconds", type=float, default=4.0, help="JSON load per window")
    args = parser.parse_args()
    install_cleanup()
    probe = Path(tempfile.mkdtemp(prefix="llm-api-garbage-"))
    plan = Plan(smoke=False, use_wrk=True, upstream="nginx", compare=False, warmup_s=1.0)
    run = Run(plan, ROOT / "bench" / ".work" / "garbage", lambda line: None)
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    env = {"PYTHONPATH": str(HOOK), "GARBAGE_PROBE_DIR": str(probe)}
    server = run.gateway("garbage", upstream, features=Features.all_on(), extra_env=env, stream=args.sse)
    print(f"one worker, everything on, {'streams' if args.sse else f'JSON at c={args.concurrency}'}")
    print(
        "path | requests | cyclic garbage per request | young collections per 1,000 | GC ms per request"
        " | longest pause ms | most common kinds"
    )
    window = 0
    try:
        for path in API_PATHS:
            target = api_target(server, path, stream=args.sse)

            def drive(target: Any = target) -> int:
                if args.sse:
                    out = sse_timing(target, count=300, warmup=0, expect=b"data: ", expect_count=CHUNKS)
                    requests = 300
                else:
                    out = run.load(
                        target, args.concurrency, server=server, warmup=False, duration_s=args.seconds
                    )
                    requests = int(out["requests"])  # type: ignore[call-overload]
                if out["errors"]:
                    raise RuntimeError(f"{target.name}: {out['errors']} failed requests")
                return requests

            if args.sse:
                drive()  # the warm-up
            else:
                run.load(target, args.concurrency, server=server, duration_s=1)
            timed_requests, timing = _window(probe, window, "timing", server, drive)
            kept_requests, garbage = _window(probe, window + 1, "garbage", server, drive)
            window += 2
            per_request = garbage["objects"] / max(1, kept_requests)
            young = timing["collections"][0] * 1000 / max(1, timed_requests)
            gc_ms = sum(timing["gc_s"]) * 1000 / max(1, timed_requests)
            longest = max(timing["longest_s"]) * 1000
            kinds = ", ".join(
                f"{name} {count / max(1, kept_requests):.2f}" for name, count in garbage["kinds"][:4]
            )
            print(
                f"{path.route} → {path.model} | {kept_requests} | {per_request:.2f} | {young:.1f} | "
                f"{gc_ms:.4f} | {longest:.1f} | {kinds or '-'}"
            )
            if garbage["exceptions"]:
                print(f"  exceptions in cycles: {', '.join(garbage['exceptions'])}")
    finally:
        server.stop()
        upstream.stop()
        run.sink.stop()


if __name__ == "__main__":
    main()
