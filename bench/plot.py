"""`python bench/plot.py results.json out.png` (run with bench/.tools-venv, which has matplotlib):
latency percentiles at concurrency 1 per target, throughput per target, and CPU per request at c=32."""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PCTS = ("50", "90", "99")


def latency_rows(r: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    direct = r.get("direct") or {}
    rows = [("direct nginx\n(Anthropic)", (direct.get("c1") or {}).get("latency_ms", {}))]
    rows.append(("direct nginx\n(OpenAI)", (direct.get("c1_openai") or {}).get("latency_ms", {})))
    for workers, node in (r.get("gateway") or {}).items():
        rows.append((f"gateway {workers}w\n(Anthropic)", (node.get("c1") or {}).get("latency_ms", {})))
        if node.get("c1_openai"):
            rows.append((f"gateway {workers}w\n(OpenAI)", node["c1_openai"].get("latency_ms", {})))
    completions = ((r.get("paths") or {}).get("completions_openai") or {}).get("c1")
    if completions:
        rows.append(("gateway 1w\n/v1/chat/\ncompletions", completions.get("latency_ms", {})))
    lite = r.get("litellm")
    if lite:
        rows.append(("LiteLLM 1w\n(OpenAI)", (lite.get("c1_openai") or {}).get("latency_ms", {})))
    return rows


def throughput_rows(r: dict[str, Any], key: str) -> list[tuple[str, float]]:
    rows = [("direct nginx", ((r.get("direct") or {}).get(key) or {}).get("rps", 0.0))]
    for workers, node in (r.get("gateway") or {}).items():
        rows.append((f"gateway {workers}w", (node.get(key) or {}).get("rps", 0.0)))
    if r.get("litellm"):
        rows.append(("LiteLLM 1w", (r["litellm"].get(key) or {}).get("rps", 0.0)))
    return rows


def cpu_rows(r: dict[str, Any]) -> list[tuple[str, float]]:
    """CPU ms per request at c=32: the headline gateway, and both sides of the LiteLLM comparison."""

    def cpu(node: Any) -> float:
        return float((node or {}).get("server_cpu_ms_per_request") or 0.0)

    gw1 = (r.get("gateway") or {}).get("1") or {}
    rows = [
        ("gateway 1w\n/v1/chat", cpu(gw1.get("c32"))),
        (
            "gateway 1w\n/v1/chat/\ncompletions",
            cpu(((r.get("paths") or {}).get("completions_openai") or {}).get("c32")),
        ),
    ]
    versus = r.get("versus_litellm") or {}
    if versus:
        rows.append(("gateway 1w\nnext to\nLiteLLM", cpu((versus.get("gateway") or {}).get("c32"))))
        rows.append(("LiteLLM 1w", cpu((versus.get("litellm") or {}).get("c32"))))
    return [(name, value) for name, value in rows if value]


def main(src: str, dest: str) -> None:
    with open(src) as handle:
        r = json.load(handle)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 5), gridspec_kw={"width_ratios": [3, 2, 1.6]})
    rows = latency_rows(r)
    width = 0.8 / len(PCTS)
    for i, pct in enumerate(PCTS):
        xs = [j + (i - 1) * width for j in range(len(rows))]
        values = [lat.get(pct, 0.0) for _, lat in rows]
        bars = ax1.bar(xs, values, width, label=f"p{pct}")
        ax1.bar_label(bars, fmt="%.2f", fontsize=7, rotation=90, padding=2)
    ax1.set_xticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax1.set_ylabel("latency (ms), concurrency 1")
    ax1.set_yscale("log")
    ax1.set_ylim(top=max(v for _, lat in rows for v in [lat.get(p, 0.0) for p in PCTS]) * 6)
    ax1.set_title("Request latency percentiles per target (log scale)")
    ax1.legend()
    keys = [k for k in ("c32", "c256") if k in (r.get("direct") or {})]
    t_rows = {k: throughput_rows(r, k) for k in keys}
    names = [name for name, _ in t_rows[keys[0]]] if keys else []
    for i, key in enumerate(keys):
        xs = [j + (i - 0.5) * 0.4 for j in range(len(names))]
        bars = ax2.bar(xs, [v for _, v in t_rows[key]], 0.4, label=f"c={key[1:]}")
        ax2.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    ax2.set_xticks(range(len(names)), names, fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylim(top=max(v for rows_ in t_rows.values() for _, v in rows_) * 4)
    ax2.set_ylabel("requests/s (log scale)")
    ax2.set_title("Throughput (non-streaming)")
    ax2.legend()
    c_rows = cpu_rows(r)
    bars = ax3.bar(range(len(c_rows)), [v for _, v in c_rows], 0.6, color="tab:gray")
    ax3.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax3.axhline(0.75, color="tab:red", linestyle="--", linewidth=1, label="goal 0.75 ms")
    ax3.set_xticks(range(len(c_rows)), [name for name, _ in c_rows], fontsize=8)
    ax3.set_yscale("log")
    ax3.set_ylabel("worker CPU ms per request, c=32 (log scale)")
    ax3.set_title("CPU per request")
    ax3.legend(fontsize=8)
    meta = r.get("meta", {})
    fig.suptitle(
        f"llm-api benchmark {meta.get('date', '')}, commit {meta.get('git_commit')} - "
        f"{meta.get('cpus')} CPUs ({meta.get('cpu_model')}), fake upstream {meta.get('upstream')}"
    )
    fig.tight_layout()
    fig.savefig(dest, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
