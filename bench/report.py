"""Targets (issue 12's table, and the path checks of issues 9-11) against the results, and the Markdown."""

from __future__ import annotations

from typing import Any

from bench import goals, report_memory, report_paths
from bench.data import dig


def _diff(a: Any, b: Any) -> float | None:
    return round(a - b, 3) if isinstance(a, int | float) and isinstance(b, int | float) else None


def derived(results: dict[str, Any]) -> dict[str, Any]:
    """Added latency (gateway minus direct) for the headline figures."""
    gw1 = dig(results, "gateway", "1") or {}
    direct = results.get("direct") or {}
    stream = results.get("streaming") or {}
    c = _first_concurrency(results)
    out: dict[str, Any] = {
        "added_p50_ms": _diff(dig(gw1, "c1", "latency_ms", "50"), dig(direct, "c1", "latency_ms", "50")),
        "added_p99_ms": _diff(dig(gw1, "c1", "latency_ms", "99"), dig(direct, "c1", "latency_ms", "99")),
        "added_p50_openai_ms": _diff(
            dig(gw1, "c1_openai", "latency_ms", "50"), dig(direct, "c1_openai", "latency_ms", "50")
        ),
        "added_ttfb_p50_ms": _diff(
            dig(stream, "anthropic", "ttfb_ms", "p50"), dig(direct, "sse_anthropic", "ttfb_ms", "p50")
        ),
        "added_stream_total_p50_ms": _diff(
            dig(stream, "anthropic", "total_ms", "p50"), dig(direct, "sse_anthropic", "total_ms", "p50")
        ),
        "added_ttfb_p50_openai_ms": _diff(
            dig(stream, "openai", "ttfb_ms", "p50"), dig(direct, "sse_openai", "ttfb_ms", "p50")
        ),
        "added_stream_total_p50_openai_ms": _diff(
            dig(stream, "openai", "total_ms", "p50"), dig(direct, "sse_openai", "total_ms", "p50")
        ),
        "throughput_c_rps": dig(gw1, f"c{c}_openai", "rps") or dig(gw1, f"c{c}", "rps"),
        "cpu_ms_per_request_c": dig(gw1, f"c{c}_openai", "server_cpu_ms_per_request"),
    }
    out["paths"] = report_paths.derived(results)
    out["issue12"] = goals.derived(results, out["paths"], c)
    lite = results.get("litellm")
    if lite:
        out["litellm_added_p50_ms"] = _diff(
            dig(lite, "c1_openai", "latency_ms", "50"), dig(direct, "c1_openai", "latency_ms", "50")
        )
        out["litellm_cpu_ms_per_request_c"] = dig(lite, f"c{c}", "server_cpu_ms_per_request")
        out["litellm_added_ttfb_p50_ms"] = _diff(
            dig(lite, "sse_openai", "ttfb_ms", "p50"), dig(direct, "sse_openai", "ttfb_ms", "p50")
        )
    return out


def _first_concurrency(results: dict[str, Any]) -> int:
    keys = [k for k in (dig(results, "gateway", "1") or {}) if k.startswith("c") and k[1:].isdigit()]
    values = sorted(int(k[1:]) for k in keys if k != "c1")
    return values[0] if values else 32


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 12's rows (`table: "issue 12"`), then the path checks of issues 9-11 (`table: "issues 9-11"`)."""
    d = derived(results)
    checks = [{**row, "table": "issues 9-11"} for row in report_paths.targets(results)]
    return goals.rows(results, d) + checks


def count_errors(results: dict[str, Any]) -> int:
    """Every failed request or stream anywhere in the results."""
    total = 0

    def walk(node: Any) -> None:
        nonlocal total
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("errors", "healthz_errors") and isinstance(value, int):
                    total += value
                else:
                    walk(value)

    walk({k: v for k, v in results.items() if k not in ("targets", "profile")})
    return total


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    d = derived(results)
    lines = [
        f"# llm-api benchmark — {meta.get('date')} ({meta.get('mode')})",
        "",
        f"Machine: {meta.get('cpus')} CPUs ({meta.get('cpu_model')}), {meta.get('memory_gib')} GiB, "
        f"Linux {meta.get('kernel')}, Python {meta.get('python')}; commit {meta.get('git_commit')}; "
        f"load: {meta.get('load_tool')}; fake upstream: {meta.get('upstream')}; "
        f"run took {meta.get('elapsed_s')} s; load average (1/5/15 min) at start "
        f"{meta.get('load_average_at_start')}, at end {meta.get('load_average_at_end')}.",
        "",
        "## Targets (issue 12: one worker, everything on, ratios taken in the same run)",
        "",
        "Everything on: auth with a managed key (token limit and budget, `POST /admin/keys`), the Redis rate",
        "limit, the usage ledger, OTLP traces and metrics at 100 % sampling, the JSON access log.",
        # Results written before the sink spoke http/protobuf have no otlp_protocol: they were gRPC.
        f"OTLP protocol: {meta.get('otlp_protocol', 'grpc')} (BENCH_OTLP_PROTOCOL).",
        f"Requests carried: {_key_kind(results)}.",
        "",
        "| figure | goal | measured | verdict | note | what stands in the way |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = results.get("targets", [])
    for t in (t for t in rows if t.get("table") == "issue 12"):
        blocker = t.get("blocker") or ("(bench/blockers.json)" if t["met"] is False else "")
        lines.append(
            f"| {t['name']} | {t['target']} | {_f(t['measured'], 3)} | {_VERDICT[t['met']]} | {t['note']} "
            f"| {blocker} |"
        )
    lines += ["", "Path checks (issues 9-11):", "", "| check | goal | measured | verdict | note |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for t in (t for t in rows if t.get("table") != "issue 12"):
        lines.append(
            f"| {t['name']} | {t['target']} | {_f(t['measured'], 3)} | {_VERDICT[t['met']]} | {t['note']} |"
        )
    lines += report_memory.profile_lines(results) + report_memory.cpu_memory_lines(results)
    lines += [
        "",
        "## Latency at concurrency 1 (ms)",
        "",
        "| target | p50 | p90 | p99 | added p50 | added p99 | server CPU ms/req |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    direct = results.get("direct") or {}
    for label, node, base in _latency_rows(results):
        lat = node.get("latency_ms", {})
        blat = (base or {}).get("latency_ms", {})
        lines.append(
            f"| {label} | {_f(lat.get('50'), 3)} | {_f(lat.get('90'), 3)} | {_f(lat.get('99'), 3)} | "
            f"{_f(_diff(lat.get('50'), blat.get('50')) if base else None, 3)} | "
            f"{_f(_diff(lat.get('99'), blat.get('99')) if base else None, 3)} | "
            f"{_f(node.get('server_cpu_ms_per_request'), 3)} |"
        )
    lines += ["", "## Throughput (req/s; errors)", ""]
    conc = [k for k in direct if k.startswith("c") and k[1:].isdigit() and k != "c1"]
    lines.append("| target | " + " | ".join(f"c={k[1:]}" for k in conc) + " |")
    lines.append("| --- |" + " --- |" * len(conc))
    for label, node in _throughput_rows(results):
        cells = [
            f"{_f(dig(node, k, 'rps'), 0)} ({dig(node, k, 'errors')})" if dig(node, k) else "n/a"
            for k in conc
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Streaming, 50 chunks (ms, p50)",
        "",
        "| target | TTFB | added TTFB | whole stream | added |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, node, base in _stream_rows(results):
        ttfb, total = dig(node, "ttfb_ms", "p50"), dig(node, "total_ms", "p50")
        lines.append(
            f"| {label} | {_f(dig(node, 'ttfb_ms', 'p50'), 3)} | "
            f"{_f(_diff(ttfb, dig(base, 'ttfb_ms', 'p50')) if base else None, 3)} | "
            f"{_f(dig(node, 'total_ms', 'p50'), 3)} | "
            f"{_f(_diff(total, dig(base, 'total_ms', 'p50')) if base else None, 3)} |"
        )
    lines += report_paths.markdown_lines(results)
    lines += _feature_lines(results) + _concurrency_lines(results)
    if d.get("litellm_added_p50_ms") is not None:
        lines += [
            "",
            f"LiteLLM added p50: {d['litellm_added_p50_ms']} ms vs gateway (OpenAI route) "
            f"{d['added_p50_openai_ms']} ms.",
        ]
    return "\n".join(lines) + "\n"


_VERDICT = {True: "met", False: "**missed**", None: "n/a"}


def _key_kind(results: dict[str, Any]) -> str:
    key = dig(results, "gateway", "1", "key") or {}
    if key.get("kind") == "managed":
        limits = ", ".join(f"{k}={v}" for k, v in (key.get("limits") or {}).items())
        return f"a managed key ({limits})"
    return f"the plain key from API_KEYS ({key.get('managed_key_skipped', 'no managed key')})"


def _latency_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    direct = results.get("direct") or {}
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
        ("direct nginx (Anthropic JSON)", direct.get("c1") or {}, None),
        ("direct nginx (OpenAI JSON)", direct.get("c1_openai") or {}, None),
    ]
    for workers, node in (results.get("gateway") or {}).items():
        rows.append((f"gateway {workers}w, Anthropic", node.get("c1") or {}, direct.get("c1")))
        if node.get("c1_openai"):
            rows.append((f"gateway {workers}w, OpenAI", node["c1_openai"], direct.get("c1_openai")))
    lite = results.get("litellm")
    if lite:
        rows.append(("LiteLLM 1w, OpenAI", lite.get("c1_openai") or {}, direct.get("c1_openai")))
    return rows


def _throughput_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [("direct nginx", results.get("direct") or {})]
    for workers, node in (results.get("gateway") or {}).items():
        rows.append((f"gateway {workers}w, Anthropic", node))
        openai = {
            k.removesuffix("_openai"): v
            for k, v in node.items()
            if k.endswith("_openai") and k != "c1_openai"
        }
        if openai:
            rows.append((f"gateway {workers}w, OpenAI", openai))
    if results.get("litellm"):
        rows.append(("LiteLLM 1w, OpenAI", results["litellm"]))
    return rows


def _stream_rows(results: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    direct = results.get("direct") or {}
    stream = results.get("streaming") or {}
    rows = [
        ("direct nginx, Anthropic SSE", direct.get("sse_anthropic"), None),
        ("direct nginx, OpenAI SSE", direct.get("sse_openai"), None),
        ("gateway 1w, Anthropic", stream.get("anthropic"), direct.get("sse_anthropic")),
        ("gateway 1w, OpenAI", stream.get("openai"), direct.get("sse_openai")),
    ]
    if results.get("litellm"):
        rows.append(("LiteLLM 1w, OpenAI", results["litellm"].get("sse_openai"), direct.get("sse_openai")))
    return rows


def _feature_lines(results: dict[str, Any]) -> list[str]:
    features = results.get("features") or {}
    if not features:
        return []
    c = _first_concurrency(results)
    base = features.get("all_off") or {}
    lines = [
        "",
        "## Cost of each feature (one worker, Anthropic JSON)",
        "",
        f"| variant | c=1 p50 ms | c=1 p99 ms | p50 vs all off | c={c} req/s | req/s vs all off "
        f"| CPU ms/req (c={c}) | CPU vs all off |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, node in features.items():
        p50 = dig(node, "c1", "latency_ms", "50")
        rps = dig(node, f"c{c}", "rps")
        base_rps = dig(base, f"c{c}", "rps")
        rel = f"{(rps / base_rps - 1) * 100:+.1f}%" if rps and base_rps else "n/a"
        cpu = dig(node, f"c{c}", "server_cpu_ms_per_request")
        base_cpu = dig(base, f"c{c}", "server_cpu_ms_per_request")
        lines.append(
            f"| {name} | {_f(p50, 3)} | {_f(dig(node, 'c1', 'latency_ms', '99'), 3)} | "
            f"{_f(_diff(p50, dig(base, 'c1', 'latency_ms', '50')), 3)} | {_f(rps, 0)} | {rel} | "
            f"{_f(cpu, 3)} | {_f(_diff(cpu, base_cpu), 3)} |"
        )
    return lines


def _concurrency_lines(results: dict[str, Any]) -> list[str]:
    conc = results.get("concurrency")
    if not conc:
        return []
    idle, busy = conc["healthz_idle"], conc["healthz_under_load"]
    return [
        "",
        "## Concurrent streams on one worker",
        "",
        f"{conc['streams']} streams of {conc['chunks']} chunks {conc['chunk_delay_s']} s apart "
        "(emulator upstream): "
        f"{conc['completed']} completed, {conc['errors']} errors, {conc['max_open_at_once']} open at once; "
        f"worker RSS {conc['worker_rss_idle_mib']} → peak {conc['worker_rss_peak_mib']} MiB "
        f"({conc['kib_per_stream']} KiB per stream); /healthz p50/p99/max idle "
        f"{idle['p50_ms']}/{idle['p99_ms']}/{idle['max_ms']} ms, "
        f"under load {busy['p50_ms']}/{busy['p99_ms']}/{busy['max_ms']} ms.",
    ]
