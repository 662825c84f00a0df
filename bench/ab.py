"""`python -m bench.ab <commit>` (~2.5 min): the working tree against `commit`, in the same minutes.

While optimising on a shared machine, one run after another moved CPU per request by up to 40 % (the host
of the hour), more than most changes are worth. This starts two one-worker all-on gateways at once, one
from a `git worktree` of `commit` and one from the working tree, behind the same nginx fake upstream and
OTLP sink, and sends both OpenAI Chat Completions for `gpt-4o` (the LiteLLM row's request): c=1 and c=32
in interleaved slices (half the rounds each gateway first), then prints p50/p99 at c=1, req/s and CPU per
request at c=32 for each, and the differences.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.harness import Plan, Run
from bench.otlp_sink import OtlpSink
from bench.paths import measure_interleaved
from bench.procs import ROOT, install_cleanup
from bench.targets import PATHS_BY_ID, api_target
from bench.upstream import start_nginx

ROUTE = PATHS_BY_ID["completions_openai"]


def worktree(commit: str) -> Path:
    """A checkout of `commit` under bench/.work (made once, reused by later runs)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    path = ROOT / "bench" / ".work" / f"ab-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the commit to compare the working tree with")
    parser.add_argument(
        "--rounds", type=int, default=8, help="interleaved slices per gateway at c=32 and at c=1 (even)"
    )
    parser.add_argument("--slice-s", type=int, default=3)
    args = parser.parse_args()
    install_cleanup()
    base_tree = worktree(args.commit)
    plan = Plan(smoke=False, use_wrk=True, upstream="nginx", compare=False, concurrencies=(32,))
    run = Run(plan, ROOT / "bench/.work/ab", print)
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    try:
        servers = {
            "base": run.gateway("ab-base", upstream, checkout=base_tree),
            "new": run.gateway("ab-new", upstream),
        }
        # Distinct gateways with the same settings: the harness must not hand back the first one.
        assert servers["base"] is not servers["new"]
        for name, server in servers.items():
            code = Path(f"/proc/{server.workers[0]}/cwd").resolve()
            print(f"- {name}: worker {server.workers[0]} runs in {code}")
        # Whichever gateway goes second in a round measured ~0.07 ms/req dearer (A/A and swapped runs):
        # half the rounds go base first, half new first, and the slices are pooled.
        measured: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
        for server in servers.values():  # warm-up, not counted
            run.load(api_target(server, ROUTE), 32, duration_s=2, server=server)
        for order in (("base", "new"), ("new", "base")) * (args.rounds // 2):
            targets = {name: api_target(servers[name], ROUTE) for name in order}
            for concurrency in (32, 1):
                half = measure_interleaved(
                    run,
                    targets,
                    servers,
                    without_c1=frozenset(targets),
                    slice_s=args.slice_s,
                    rounds=1,
                    concurrency=concurrency,
                )
                for name in order:
                    measured[name].append({"c": concurrency, **half[name][f"c{concurrency}"]})
    finally:
        upstream.stop()
        run.sink.stop()
    rows = {name: _summary(slices) for name, slices in measured.items()}
    for name, row in rows.items():
        print(f"{name:5s} CPU ms/req at c=32, slice by slice: {row['cpu_by_slice']}")
        print(
            f"{name:5s} c=1 p50 {row['p50']:.3f} ms p99 {row['p99']:.3f} ms | c=32 {row['rps']:.1f} req/s, "
            f"CPU {row['cpu']:.3f} ms/req"
        )
    base, new = rows["base"], rows["new"]
    print(
        f"new - base: c=1 p50 {new['p50'] - base['p50']:+.3f} ms, p99 {new['p99'] - base['p99']:+.3f} ms; "
        f"c=32 {100 * (new['rps'] / base['rps'] - 1):+.1f} % req/s, "
        f"CPU {new['cpu'] - base['cpu']:+.3f} ms/req"
    )


def _summary(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """c=1: the slices' mean p50 and p99; c=32: req/s and CPU per request over all its slices."""
    c1 = [s for s in slices if s["c"] == 1]
    c32 = [s for s in slices if s["c"] == 32]
    requests = sum(s["requests"] for s in c32)
    return {
        "p50": statistics.fmean(s["latency_ms"]["50"] for s in c1),
        "p99": statistics.fmean(s["latency_ms"]["99"] for s in c1),
        "rps": requests / sum(s["duration_s"] for s in c32),
        "cpu": sum(s["server_cpu_ms_per_request"] * s["requests"] for s in c32) / requests,
        "cpu_by_slice": [s["server_cpu_ms_per_request"] for s in c32],
    }


if __name__ == "__main__":
    main()
