"""The report's sections next to the targets table: what the profile shows, CPU per request and memory per
worker of every server, and the gateway against LiteLLM side by side."""

from __future__ import annotations

from typing import Any

from bench.data import dig

TOP = 8


def _f(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _items(pairs: Any) -> str:
    return "; ".join(f"{name} {pct} %" for name, pct in (pairs or [])[:TOP]) or "n/a"


def profile_lines(results: dict[str, Any]) -> list[str]:
    """The profile's top items, for the "what stands in the way" notes of the rows that miss."""
    profile = results.get("profile")
    if not profile:
        return ["", "No profile in this run (`--no-profile`, or py-spy missing): `python -m bench.profile`."]
    return [
        "",
        "### What the profile shows (py-spy `--gil`, one worker, everything on, "
        f"wrk c={profile.get('concurrency')}, {profile.get('samples')} samples; stacks in "
        f"`{profile.get('collapsed_stacks')}`)",
        "",
        f"- layers (inclusive): {_items(profile.get('layers_inclusive_pct'))}",
        f"- OpenTelemetry code (self): {profile.get('opentelemetry_self_pct')} %",
        f"- packages (self): {_items(profile.get('self_by_package_pct'))}",
        f"- functions (self): {_items(profile.get('self_by_function_pct'))}",
    ]


def _memory_cells(rss: dict[str, Any] | None) -> str:
    if not rss:
        return "n/a | n/a | n/a | n/a | n/a"
    return " | ".join(
        ", ".join(str(v) for v in rss.get(key) or []) or "n/a"
        for key in ("idle_mib", "peak_mib", "after_load_mib", "after_load_pss_mib", "after_load_uss_mib")
    )


def cpu_memory_lines(results: dict[str, Any]) -> list[str]:
    """CPU per request (the worker's utime+stime over each load) and RSS/PSS/USS per worker."""
    c = min(
        (int(k[1:]) for k in dig(results, "gateway", "1") or {} if k[1:].isdigit() and k != "c1"), default=32
    )
    gw = results.get("gateway") or {}
    rows: list[tuple[str, Any, Any, Any]] = []
    for workers, node in gw.items():
        rows.append(
            (f"gateway {workers}w, /v1/chat → claude", dig(node, "c1"), dig(node, f"c{c}"), node.get("rss"))
        )
        if node.get("c1_openai"):
            rows.append(
                (
                    f"gateway {workers}w, /v1/chat → gpt-4o",
                    node["c1_openai"],
                    dig(node, f"c{c}_openai"),
                    None,
                )
            )
    completions = dig(results, "paths", "completions_openai") or {}
    if completions:
        rows.append(
            (
                "gateway 1w, /v1/chat/completions → gpt-4o",
                completions.get("c1"),
                completions.get(f"c{c}"),
                None,
            )
        )
    versus = results.get("versus_litellm") or {}
    lite = results.get("litellm") or {}
    if versus:
        rows.append(
            (
                "gateway 1w next to LiteLLM (interleaved)",
                dig(versus, "gateway", "c1"),
                dig(versus, "gateway", f"c{c}"),
                None,
            )
        )
        rows.append(
            (f"LiteLLM {lite.get('version')} 1w (interleaved)", dig(versus, "litellm", "c1"),
             dig(versus, "litellm", f"c{c}"), lite.get("rss"))
        )  # fmt: skip
    lines = [
        "",
        "## CPU per request and memory per worker",
        "",
        "CPU: the worker's utime+stime over each load divided by its requests (`/proc/<pid>/stat`), barely",
        "affected by other processes on the machine, unlike latency. Memory after load from",
        "`/proc/<pid>/smaps_rollup`: USS is what only that worker maps, i.e. what one more worker costs.",
        "",
        f"| server, request | CPU ms/req c=1 | CPU ms/req c={c} | req/s c={c} | RSS idle | RSS peak "
        "| RSS after | PSS after | USS after (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, c1, cn, rss in rows:
        lines.append(
            f"| {label} | {_f(dig(c1, 'server_cpu_ms_per_request'), 3)} | "
            f"{_f(dig(cn, 'server_cpu_ms_per_request'), 3)} | {_f(dig(cn, 'rps'), 0)} | "
            f"{_memory_cells(rss) if rss else ' | | | | '} |"
        )
    relays = [
        f"{workers}w: RSS {relay.get('rss_mib')}, PSS {relay.get('pss_mib')}, USS {relay.get('uss_mib')}"
        for workers, node in gw.items()
        if (relay := dig(node, "rss", "relay_after_load"))
    ]
    if relays:
        lines += [
            "",
            "The span relay (one process per gateway, forked by the master, exports the workers' spans;",
            "its CPU is counted in the gateway's CPU per request above), MiB after load: "
            f"{'; '.join(relays)}.",
        ]
    if versus:
        setup = lite.get("setup") or {}
        env = ", ".join(f"{k}={v}" for k, v in (setup.get("env") or {}).items())
        modules = ", ".join(f"{m} {'yes' if ok else 'no'}" for m, ok in (setup.get("modules") or {}).items())
        lines += [
            "",
            f"Gateway vs LiteLLM: both get {versus.get('route')} → {versus.get('model')} (OpenAI Chat",
            "Completions), c=1 one after the other, then c=N in interleaved slices",
            "(`versus_litellm.*.c<N>.rounds` in the JSON).",
            f"LiteLLM set up as fast as it goes (docs/performance.md): {setup.get('argv')}; env {env};",
            f"importable: {modules}.",
        ]
    return lines
