"""`python -m bench [--smoke] [--compare] [--out DIR]`: run the benchmark and write JSON + Markdown."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench import report
from bench.harness import Plan, Run
from bench.load import wrk_available
from bench.procs import ROOT, install_cleanup
from bench.upstream import nginx_binary

TOOLS_PYTHON = ROOT / "bench" / ".tools-venv" / "bin" / "python"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few hundred requests, no timing claims")
    parser.add_argument("--compare", action="store_true", help="also measure the LiteLLM proxy")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="only re-write the .md next to this results .json (after editing bench/blockers.json)",
    )
    args = parser.parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
        results["targets"] = report.targets(results)
        args.report.write_text(json.dumps(results, indent=2) + "\n")
        args.report.with_suffix(".md").write_text(report.markdown(results))
        return 0

    install_cleanup()
    upstream = "nginx" if nginx_binary() else "emulator"
    if args.smoke:
        plan = Plan.smoke_plan()
    else:
        plan = Plan(smoke=False, use_wrk=wrk_available(), upstream=upstream, compare=args.compare)
        if args.no_profile:
            plan = Plan(**{**plan.__dict__, "profile_s": 0.0})
    out = args.out or (ROOT / "bench" / ("results" if not args.smoke else ".work/smoke"))
    out.mkdir(parents=True, exist_ok=True)
    workdir = ROOT / "bench" / ".work" / ("smoke" if args.smoke else "run")

    def log(message: str) -> None:
        print(message, flush=True)

    results = Run(plan, workdir, log).execute()
    results["derived"] = report.derived(results)
    results["targets"] = report.targets(results)
    results["errors_total"] = report.count_errors(results)
    name = "smoke" if args.smoke else ("compare" if args.compare else "latest")
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = out / f"{name}.md"
    md_path.write_text(report.markdown(results))
    log(f"results: {json_path} and {md_path.name}")
    if not args.smoke and TOOLS_PYTHON.exists():
        subprocess.run(
            [str(TOOLS_PYTHON), str(ROOT / "bench" / "plot.py"), str(json_path), str(out / "latency.png")],
            check=False,
        )
    print(report.markdown(results).split("## Latency")[0])
    return 0 if results["errors_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
