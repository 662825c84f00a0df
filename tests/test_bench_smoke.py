"""The benchmark harness still runs end to end: `python -m bench --smoke` (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

SECTIONS = ("meta", "direct", "gateway", "streaming", "features", "concurrency", "derived", "targets")


def test_smoke_run_writes_results_with_zero_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    assert set(SECTIONS) <= set(results)
    assert results["errors_total"] == 0
    assert results["meta"]["mode"] == "smoke"
    gateway = results["gateway"]["1"]
    assert {"c1", "c1_openai", "rss", "libraries"} <= set(gateway)
    assert gateway["c1"]["requests"] > 0
    assert {"ttfb_ms", "total_ms"} <= set(results["streaming"]["anthropic"])
    assert results["concurrency"]["completed"] == results["concurrency"]["streams"]
    assert {target["name"] for target in results["targets"]} >= {"added latency p50 (c=1)"}
    assert (tmp_path / "smoke.md").read_text().startswith("# llm-api benchmark")
