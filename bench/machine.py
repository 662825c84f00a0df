"""What the results were measured on: machine, commit, tools."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.procs import ROOT

if TYPE_CHECKING:
    from bench.harness import Plan


def litellm_version() -> str | None:
    pip = ROOT / "bench" / ".litellm-venv" / "bin" / "pip"
    done = subprocess.run([str(pip), "show", "litellm"], capture_output=True, text=True, check=False)
    return next(
        (ln.split(":", 1)[1].strip() for ln in done.stdout.splitlines() if ln.startswith("Version:")), None
    )


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: how busy the shared machine was (2 cores here)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(plan: Plan) -> dict[str, object]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    # Uncommitted changes to the code measured make the commit an approximation: say so.
    changed = subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "llm_api",
            "bench",
            "gunicorn.conf.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if commit and changed:
        commit += "+uncommitted"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "smoke" if plan.smoke else ("compare" if plan.compare else "full"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": commit or None,
        "load_tool": "wrk" if plan.use_wrk else "python",
        "load_average_at_start": load_average(),
        "upstream": plan.upstream,
    }
