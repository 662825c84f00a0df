"""Issue 12's targets table, row by row, checked against one run's results.

Every row is one line of the issue's table: its goal, what this run measured, the verdict, a note with the
figures behind it, and, for a row that misses, what stands in the way (`bench/blockers.json`, written from
the profile by whoever reads the run; the report prints the profile's top items next to the table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.data import dig, is_number

BLOCKERS = Path(__file__).with_name("blockers.json")
# The paths the headline rows take ("/v1/chat and /v1/chat/completions same-vendor"): a row's figure is the
# worst of them, each is named in the note. /v1/messages → claude (same vendor too) is in the note only.
HEADLINE = ("chat_anthropic", "chat_openai", "completions_openai")
NOTED = (*HEADLINE, "messages_anthropic")
LABELS = {
    "chat_anthropic": "/v1/chat → claude",
    "chat_openai": "/v1/chat → gpt-4o",
    "completions_openai": "/v1/chat/completions → gpt-4o",
    "messages_anthropic": "/v1/messages → claude",
}
CPU_GOAL_MS = 0.75
STREAMS_GOAL = 5000


def _worst(values: list[Any]) -> float | None:
    numbers = [v for v in values if is_number(v)]
    return max(numbers) if numbers else None


def _diff(a: Any, b: Any) -> float | None:
    return round(a - b, 3) if is_number(a) and is_number(b) else None


def _at_most(value: Any, limit: float) -> bool | None:
    return None if not is_number(value) else value <= limit


def blockers() -> dict[str, str]:
    """Row id → what stands in the way, as written in bench/blockers.json (missing file: none)."""
    try:
        data = json.loads(BLOCKERS.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items() if not str(k).startswith("_")}


def _per_path(paths: dict[str, Any], figure: str, ids: tuple[str, ...] = NOTED) -> str:
    return ", ".join(f"{LABELS[i]} {_fmt(dig(paths, i, figure))}" for i in ids)


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if is_number(value) else "n/a"


def rows(results: dict[str, Any], report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's rows: `id`, `name`, `target`, `measured`, `met`, `note`, `blocker`. `report` is
    bench.report.derived's output (`paths` per API path, `issue12` from `derived` below)."""
    paths = report.get("paths") or {}
    derived = report.get("issue12") or {}
    c = derived.get("concurrency", 32)
    out: list[dict[str, Any]] = []

    def row(row_id: str, name: str, target: str, measured: Any, met: bool | None, note: str) -> None:
        out.append(
            {
                "id": row_id,
                "name": name,
                "target": target,
                "measured": measured,
                "met": met,
                "note": note,
                "table": "issue 12",
            }
        )

    for pct, limit in (("p50", 1.0), ("p99", 3.0)):
        worst = _worst([dig(paths, i, f"added_{pct}_ms") for i in HEADLINE])
        row(
            f"added_{pct}",
            f"added latency {pct} (c=1)",
            f"<= {limit:g} ms",
            worst,
            _at_most(worst, limit),
            "worst of: " + _per_path(paths, f"added_{pct}_ms") + " ms",
        )

    versus = derived.get("versus_litellm") or {}
    ratio, ours_cpu, lite_cpu = (
        versus.get("rps_ratio"),
        versus.get("gateway_cpu_ms"),
        versus.get("litellm_cpu_ms"),
    )
    if ours_cpu is None:  # no LiteLLM in this run (`make bench`): the CPU half of the row still holds
        ours_cpu = dig(results, "paths", "completions_openai", f"c{c}", "server_cpu_ms_per_request")
    cpu_ok = _at_most(ours_cpu, CPU_GOAL_MS)
    met = None if ratio is None else (ratio >= 10 and bool(cpu_ok))
    if cpu_ok is False:
        met = False
    note = (
        f"{versus.get('gateway_rps')} vs {versus.get('litellm_rps')} req/s, interleaved; CPU/request "
        f"{_fmt(ours_cpu)} ms (goal <= {CPU_GOAL_MS}) vs LiteLLM {_fmt(lite_cpu)} ms; "
        f"{versus.get('route', '/v1/chat/completions')} → gpt-4o on both"
        if versus
        else f"no LiteLLM in this run (make bench-compare); CPU/request {_fmt(ours_cpu)} ms "
        f"(goal <= {CPU_GOAL_MS})"
    )
    row(
        "throughput_vs_litellm",
        f"throughput c={c} vs LiteLLM (same run)",
        f">= 10x, <= {CPU_GOAL_MS} ms CPU/request",
        ratio,
        met,
        note,
    )

    for row_id, name, figure, limit in (
        ("added_ttfb", "added time to first streamed byte (p50)", "added_ttfb_p50_ms", 1.0),
        ("added_stream", "added time over a 50-chunk stream (p50)", "added_stream_total_p50_ms", 1.5),
    ):
        worst = _worst([dig(paths, i, figure) for i in HEADLINE])
        row(
            row_id,
            name,
            f"<= {limit:g} ms",
            worst,
            _at_most(worst, limit),
            "worst of: " + _per_path(paths, figure) + " ms",
        )

    translated = derived.get("translated") or {}
    value = translated.get("added_p50_ms")
    row(
        "translated",
        "translated path (OpenAI format → Claude model) vs same-vendor",
        "<= +0.2 ms",
        value,
        _at_most(value, 0.2),
        "added p50 c=1 of /v1/chat/completions → claude minus /v1/messages → claude (the same upstream call: "
        "only the two codecs differ), "
        + ("in interleaved c=1 slices" if translated.get("interleaved") else "from their own c=1 loads")
        + f" ({_fmt(translated.get('separate_loads_p50_ms'))} ms from their own c=1 loads); "
        f"CPU/request c={c} {_fmt(translated.get('cpu_ms'))} ms more; the other "
        "direction (/v1/messages → gpt-4o vs /v1/chat/completions → gpt-4o) "
        f"{_fmt(translated.get('reverse_p50_ms'))} ms",
    )

    memory = derived.get("memory") or {}
    rss, uss = memory.get("rss_after_load_mib"), memory.get("uss_per_worker_mib")
    mem_met = None if rss is None else (rss <= 100 and (uss is None or uss <= 50))
    row(
        "worker_memory",
        "worker RSS after load; USS per additional worker",
        "<= 100 MiB; USS <= 50 MiB",
        rss,
        mem_met,
        f"USS {_fmt(uss)} MiB per worker ({memory.get('uss_from')}); "
        f"PSS {_fmt(memory.get('pss_after_load_mib'))} MiB; "
        f"idle {_fmt(memory.get('rss_idle_mib'))}, peak {_fmt(memory.get('rss_peak_mib'))} MiB",
    )

    # The held-streams step (branch memstreams): `completed` or `streams.count`, `errors`,
    # `kib_per_stream`, `healthz_p99_ms` (or the older `healthz_under_load.p99_ms`).
    conc = results.get("concurrency") or {}
    opened = conc.get("streams")
    count = conc.get("completed", dig(conc, "streams", "count"))
    errors = conc.get("errors")
    if isinstance(opened, dict):
        opened = opened.get("opened", opened.get("requested", opened.get("count")))
    kib = conc.get("kib_per_stream")
    # "While they run": once every stream is open and relaying (the opening burst is shown beside it).
    held_samples = dig(conc, "healthz_held", "samples")
    p99 = conc.get("healthz_p99_ms", dig(conc, "healthz_held", "p99_ms") if held_samples != 0 else None)
    if p99 is None and held_samples is None:  # results from before the held/opening split
        p99 = dig(conc, "healthz_under_load", "p99_ms")
    # All of them open at the same moment (streams that end before the last one opens do not count).
    at_once = conc.get("max_open_at_once", count)
    opening_p99 = dig(conc, "healthz_opening", "p99_ms")
    ok = (
        None
        if count is None
        else (
            count >= STREAMS_GOAL
            and (at_once is None or at_once >= STREAMS_GOAL)
            and errors == 0
            and _at_most(kib, 40.0) is True
            and _at_most(p99, 50.0) is True
        )
    )
    row(
        "streams",
        "concurrent streams per worker",
        f"{STREAMS_GOAL} with 0 errors, <= 40 KiB each, /healthz p99 <= 50 ms",
        f"{count}/{opened} ok, {errors} errors, {at_once} open at once",
        ok,
        f"{kib} KiB/stream, /healthz p99 {p99} ms while they run ({opening_p99} ms while they open)",
    )

    known = blockers()
    for item in out:
        item["blocker"] = known.get(item["id"], "") if item["met"] is False else ""
    return out


def derived(results: dict[str, Any], paths: dict[str, Any], c: int) -> dict[str, Any]:
    """The figures the rows compare: the LiteLLM ratio, the translated path, memory per worker."""
    out: dict[str, Any] = {"concurrency": c}
    versus = results.get("versus_litellm") or {}
    if versus:
        ours, lite = dig(versus, "gateway", f"c{c}") or {}, dig(versus, "litellm", f"c{c}") or {}
        rps, lite_rps = ours.get("rps"), lite.get("rps")
        out["versus_litellm"] = {
            "route": versus.get("route"),
            "gateway_rps": rps,
            "litellm_rps": lite_rps,
            "rps_ratio": round(rps / lite_rps, 2)
            if is_number(rps) and is_number(lite_rps) and lite_rps
            else None,
            "gateway_cpu_ms": ours.get("server_cpu_ms_per_request"),
            "litellm_cpu_ms": lite.get("server_cpu_ms_per_request"),
            "gateway_added_p50_ms": _diff(
                dig(versus, "gateway", "c1", "latency_ms", "50"),
                dig(results, "direct", "c1_openai", "latency_ms", "50"),
            ),
            "litellm_added_p50_ms": _diff(
                dig(versus, "litellm", "c1", "latency_ms", "50"),
                dig(results, "direct", "c1_openai", "latency_ms", "50"),
            ),
        }

    def cpu(path_id: str) -> Any:
        return dig(results, "paths", path_id, f"c{c}", "server_cpu_ms_per_request")

    # Interleaved c=1 slices of the two paths (bench.paths.TRANSLATED_PAIR) where the run has them: the
    # mean of the slices' p50s; else the two paths' own c=1 loads.
    pair = results.get("translated_c1") or {}
    interleaved = _diff(
        dig(pair, "completions_anthropic", "latency_ms", "50"),
        dig(pair, "messages_anthropic", "latency_ms", "50"),
    )
    separate = _diff(
        dig(paths, "completions_anthropic", "added_p50_ms"),
        dig(paths, "messages_anthropic", "added_p50_ms"),
    )
    out["translated"] = {
        "added_p50_ms": interleaved if interleaved is not None else separate,
        "interleaved": interleaved is not None,
        "separate_loads_p50_ms": separate,
        "cpu_ms": _diff(cpu("completions_anthropic"), cpu("messages_anthropic")),
        "reverse_p50_ms": _diff(
            dig(paths, "messages_openai", "added_p50_ms"), dig(paths, "completions_openai", "added_p50_ms")
        ),
    }
    one = dig(results, "gateway", "1", "rss") or {}
    two = dig(results, "gateway", "2", "rss") or {}
    uss_source = two if two.get("after_load_uss_mib") else one
    out["memory"] = {
        "rss_after_load_mib": _worst(one.get("after_load_mib") or []),
        "rss_idle_mib": _worst(one.get("idle_mib") or []),
        "rss_peak_mib": _worst(one.get("peak_mib") or []),
        "pss_after_load_mib": _worst(one.get("after_load_pss_mib") or []),
        "uss_per_worker_mib": _worst(uss_source.get("after_load_uss_mib") or []),
        "uss_from": "2-worker gateway, worst worker" if uss_source is two else "1-worker gateway",
    }
    return out
