"""The report's rows for issues 9-11: each API path, a budgeted key and a router alias, next to /v1/chat.

Every ratio is against /v1/chat measured in the same run on the one-worker all-on gateway, with the same
model (so the same upstream call): CPU per request at c=N is the figure to compare (latency on a shared
machine moves by more than the differences measured here).
"""

from __future__ import annotations

from typing import Any

from bench.data import dig, is_number
from bench.targets import API_PATHS, CHAT_ANTHROPIC, ApiPath, reference_for

# "No more than /v1/chat": CPU per request repeats within a few percent between runs, not better.
NOISE = 0.05


def _diff(a: Any, b: Any) -> float | None:
    return round(a - b, 3) if is_number(a) and is_number(b) else None


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 3) if is_number(a) and is_number(b) and b else None


def concurrency(results: dict[str, Any]) -> int:
    keys = [k for k in (dig(results, "gateway", "1") or {}) if k.startswith("c") and k[1:].isdigit()]
    values = sorted(int(k[1:]) for k in keys if k != "c1")
    return values[0] if values else 32


def json_node(results: dict[str, Any], path: ApiPath) -> dict[str, Any]:
    """`{"c1": …, "c<N>": …}` of `path` from `paths`; /v1/chat's c=1 (and its c=N in a run without the
    paths' rounds) from the gateway matrix."""
    node = dig(results, "paths", path.id) or {}
    if path.kind != "reference":
        return node
    gw1 = dig(results, "gateway", "1") or {}
    if path.provider == "anthropic":
        matrix = {k: v for k, v in gw1.items() if k.startswith("c") and k[1:].isdigit()}
    else:
        matrix = {k.removesuffix("_openai"): v for k, v in gw1.items() if k.endswith("_openai")}
    return {**matrix, **{k: v for k, v in node.items() if k != "sse"}}


def stream_node(results: dict[str, Any], path: ApiPath) -> dict[str, Any] | None:
    if path.kind == "reference":
        return dig(results, "streaming", path.provider)  # type: ignore[no-any-return]
    return dig(results, "paths", path.id, "sse")  # type: ignore[no-any-return]


def direct_node(results: dict[str, Any], provider: str, *, stream: bool = False) -> dict[str, Any] | None:
    key = f"sse_{provider}" if stream else ("c1" if provider == "anthropic" else "c1_openai")
    return dig(results, "direct", key)  # type: ignore[no-any-return]


def _cost(node: dict[str, Any] | None, c: int) -> Any:
    return dig(node, f"c{c}", "server_cpu_ms_per_request")


def derived(results: dict[str, Any]) -> dict[str, Any]:
    """Per path: added latency vs the direct upstream, and ratios against /v1/chat (same model)."""
    c = concurrency(results)
    out: dict[str, Any] = {}
    for path in API_PATHS:
        node, ref = json_node(results, path), json_node(results, reference_for(path))
        direct = direct_node(results, path.provider) or {}
        sse, ref_sse = stream_node(results, path), stream_node(results, reference_for(path))
        direct_sse = direct_node(results, path.provider, stream=True)
        out[path.id] = {
            "route": path.route,
            "model": path.model,
            "kind": path.kind,
            "added_p50_ms": _diff(dig(node, "c1", "latency_ms", "50"), dig(direct, "latency_ms", "50")),
            "added_p99_ms": _diff(dig(node, "c1", "latency_ms", "99"), dig(direct, "latency_ms", "99")),
            "cpu_ratio_vs_chat": _ratio(_cost(node, c), _cost(ref, c)),
            "rps_ratio_vs_chat": _ratio(dig(node, f"c{c}", "rps"), dig(ref, f"c{c}", "rps")),
            "added_ttfb_p50_ms": _diff(dig(sse, "ttfb_ms", "p50"), dig(direct_sse, "ttfb_ms", "p50")),
            "added_stream_total_p50_ms": _diff(
                dig(sse, "total_ms", "p50"), dig(direct_sse, "total_ms", "p50")
            ),
            "stream_total_ratio_vs_chat": _ratio(
                dig(sse, "total_ms", "p50"), dig(ref_sse, "total_ms", "p50")
            ),
        }
    keys = results.get("keys") or {}
    out["budgeted_key"] = {
        "skipped": keys.get("skipped"),
        "cpu_ratio_vs_plain": _ratio(_cost(keys.get("budgeted"), c), _cost(keys.get("plain"), c)),
        "cpu_added_vs_plain_ms": _diff(_cost(keys.get("budgeted"), c), _cost(keys.get("plain"), c)),
    }
    router = results.get("router") or {}
    out["alias"] = {
        "skipped": router.get("skipped"),
        "cpu_ratio_vs_model": _ratio(
            _cost(router.get("alias_model"), c), _cost(router.get("direct_model"), c)
        ),
    }
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 9: a same-vendor path costs no more than /v1/chat; issue 11: an alias no more than its model."""
    d = derived(results)
    c = concurrency(results)
    rows: list[dict[str, Any]] = []
    goal = f"<= 1.00x (+{NOISE:.0%} noise)"
    for path in API_PATHS:
        if path.kind != "same vendor":
            continue
        ratio = d[path.id]["cpu_ratio_vs_chat"]
        rows.append(
            {
                "name": f"{path.route} same vendor ({path.model}): CPU/request c={c} vs /v1/chat",
                "target": goal,
                "measured": ratio,
                "met": None if ratio is None else ratio <= 1 + NOISE,
                "note": f"req/s ratio {d[path.id]['rps_ratio_vs_chat']}, "
                f"stream time ratio {d[path.id]['stream_total_ratio_vs_chat']}",
            }
        )
    alias = d["alias"]
    ratio = alias["cpu_ratio_vs_model"]
    rows.append(
        {
            "name": f"router alias, healthy first target: CPU/request c={c} vs the model named directly",
            "target": goal,
            "measured": ratio,
            "met": None if ratio is None else ratio <= 1 + NOISE,
            "note": alias["skipped"] or "",
        }
    )
    return rows


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _x(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _json_row(label: str, node: dict[str, Any] | None, base: dict[str, Any] | None, ref: Any, c: int) -> str:
    """One c=1 / c=N row: `base` is the direct upstream (added latency), `ref` /v1/chat's node (ratios)."""
    lat = dig(node, "c1", "latency_ms") or {}
    blat = dig(base, "latency_ms") or {}
    rps, cpu = dig(node, f"c{c}", "rps"), _cost(node, c)
    ref_ratio = (
        (_x(_ratio(rps, dig(ref, f"c{c}", "rps"))), _x(_ratio(cpu, _cost(ref, c)))) if ref else ("", "")
    )
    added = _f(_diff(lat.get("50"), blat.get("50"))), _f(_diff(lat.get("99"), blat.get("99")))
    return (
        f"| {label} | {_f(lat.get('50'))} | {_f(lat.get('99'))} | {added[0]} | {added[1]} | {_f(rps, 0)} | "
        f"{ref_ratio[0]} | {_f(cpu)} | {ref_ratio[1]} |"
    )


def _json_header(first: str, c: int, versus: str) -> list[str]:
    return [
        f"| {first} | c=1 p50 ms | c=1 p99 ms | added p50 | added p99 | c={c} req/s | req/s {versus} "
        f"| CPU ms/req (c={c}) | CPU {versus} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]


def markdown_lines(results: dict[str, Any]) -> list[str]:
    if not results.get("paths"):
        return []
    c = concurrency(results)
    lines = [
        "",
        "## API paths (one worker, everything on; ratios vs /v1/chat with the same model, same run)",
        "",
        "Added latency is against the direct upstream of the provider called. Same vendor: the body is",
        "relayed; translated: the request and the answer go through both codecs.",
        "",
        *_json_header("path", c, "vs /v1/chat"),
    ]
    for path in API_PATHS:
        ref = None if path.kind == "reference" else json_node(results, reference_for(path))
        direct = direct_node(results, path.provider)
        lines.append(_json_row(path.label, json_node(results, path), direct, ref, c))
    lines += [
        "",
        "### Streamed, 50 chunks (ms, p50)",
        "",
        "| path | TTFB | added TTFB | whole stream | added | whole stream vs /v1/chat |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for path in API_PATHS:
        node = stream_node(results, path)
        if not node:
            continue
        direct = direct_node(results, path.provider, stream=True)
        ttfb, total = dig(node, "ttfb_ms", "p50"), dig(node, "total_ms", "p50")
        ref = None if path.kind == "reference" else stream_node(results, reference_for(path))
        added_ttfb = _f(_diff(ttfb, dig(direct, "ttfb_ms", "p50")))
        lines.append(
            f"| {path.label} | {_f(ttfb)} | {added_ttfb} | {_f(total)} | "
            f"{_f(_diff(total, dig(direct, 'total_ms', 'p50')))} | "
            f"{_x(_ratio(total, dig(ref, 'total_ms', 'p50'))) if ref else ''} |"
        )
    return lines + _keys_lines(results, c) + _router_lines(results, c)


def _keys_lines(results: dict[str, Any], c: int) -> list[str]:
    keys = results.get("keys")
    if not keys:
        return []
    lines = ["", f"## Budgeted managed key vs plain key ({keys['route']} → {keys['model']}, one worker)", ""]
    if keys.get("skipped"):
        return [*lines, f"Not measured: {keys['skipped']}."]
    main = json_node(results, CHAT_ANTHROPIC)
    direct = direct_node(results, "anthropic")
    limits = ", ".join(f"{k}={v}" for k, v in (keys.get("limits") or {}).items())
    lines += [
        "One gateway with DATABASE_URL (SQLite), ADMIN_API_KEY and GATEWAY_CONFIG (genai-prices' table):",
        "the plain key is from API_KEYS (global limits), the budgeted one was made by `POST /admin/keys`",
        f"({limits}).",
        "",
        *_json_header("key", c, "vs plain key"),
        _json_row("/v1/chat, plain key, on the API paths' gateway", main, direct, None, c),
        _json_row("plain key (API_KEYS)", keys.get("plain"), direct, None, c),
        _json_row("budgeted managed key", keys.get("budgeted"), direct, keys.get("plain"), c),
    ]
    usage = keys.get("budgeted_usage_after") or {}
    if usage:
        lines += [
            "",
            "The budgeted key's live usage afterwards (`GET /admin/keys/{id}`): "
            f"{usage.get('period_spend_usd')} USD this period; {usage.get('minute_tokens')} tokens and "
            f"{usage.get('minute_requests')} requests in the current minute.",
        ]
    return lines


def _router_lines(results: dict[str, Any], c: int) -> list[str]:
    router = results.get("router")
    if not router:
        return []
    lines = [
        "",
        f"## Router alias vs the model named directly ({router['route']}, alias `{router['alias']}` → "
        f"{router['model']} first, one worker)",
        "",
    ]
    note = "The same gateway as the keys above; both requests with the plain key."
    if router.get("skipped"):
        return [*lines, f"Not measured: {router['skipped']}."]
    direct = direct_node(results, "anthropic")
    return [
        *lines,
        note,
        "",
        *_json_header("request names", c, "vs the model"),
        _json_row(f"the model `{router['model']}`", router.get("direct_model"), direct, None, c),
        _json_row(
            f"the alias `{router['alias']}`", router.get("alias_model"), direct, router.get("direct_model"), c
        ),
    ]
