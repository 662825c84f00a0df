"""The API paths of issues 9-11 next to /v1/chat: the compatible endpoints (same vendor and translated),
a budgeted managed key against a plain one, and a router alias against its first target named directly.

Each scenario records `{"skipped": why}` instead of figures when the gateway under test lacks the feature
(managed keys: `POST /admin/keys` is not mounted; router: answers carry no `X-LLM-Deployment`), so the
rows appear by themselves once the feature is merged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx

from bench.gateway import CLIENT_KEY, Features, Server
from bench.keys import admin_env, create_key, key_usage, limits
from bench.load import Target
from bench.targets import API_PATHS, CHAT_ANTHROPIC, api_target, stream_marker
from bench.upstream import MODEL_ANTHROPIC, MODEL_OPENAI, Upstream

if TYPE_CHECKING:
    from bench.harness import Run

ALIAS = "bench-smart"
# The same upstream call (Anthropic /v1/messages) with and without the two codecs.
TRANSLATED_PAIR = ("messages_anthropic", "completions_anthropic")


def _number(value: object) -> float:
    assert isinstance(value, int | float), value
    return float(value)


def _combined(slices: list[dict[str, object]]) -> dict[str, object]:
    """One c=N result from interleaved slices: totals, CPU per request over all of them, and each latency
    percentile as the mean of the slices' (kept for reference; the report compares req/s and CPU)."""
    if len(slices) == 1:
        return slices[0]
    requests = sum(_number(s["requests"]) for s in slices)
    duration = sum(_number(s["duration_s"]) for s in slices)
    latencies = [lat for s in slices if isinstance(lat := s["latency_ms"], dict)]
    out: dict[str, object] = {
        "requests": int(requests),
        "errors": int(sum(_number(s["errors"]) for s in slices)),
        "duration_s": round(duration, 3),
        "rps": round(requests / duration, 1) if duration else 0.0,
        "latency_ms": {
            p: round(sum(_number(lat[p]) for lat in latencies) / len(latencies), 3) for p in latencies[0]
        },
        "connections": slices[0]["connections"],
        "tool": slices[0]["tool"],
        "rounds": [{k: s.get(k) for k in ("rps", "server_cpu_ms_per_request")} for s in slices],
    }
    if requests and all("server_cpu_ms_per_request" in s for s in slices):
        cpu_ms = sum(_number(s["server_cpu_ms_per_request"]) * _number(s["requests"]) for s in slices)
        out["server_cpu_ms_per_request"] = round(cpu_ms / requests, 3)
    return out


def measure_interleaved(
    run: Run,
    targets: dict[str, Target],
    servers: Server | Mapping[str, Server],
    *,
    without_c1: frozenset[str] = frozenset(),
    latency_s: float | None = None,
    slice_s: int | None = None,
    rounds: int | None = None,
    concurrency: int | None = None,
) -> dict[str, dict[str, object]]:
    """`{name: {"c1": …, "c<N>": …}}`: c=1 one target after the other, then c=N in rounds that visit
    every target in turn (the machine is shared: a slow minute then weighs on all of them alike). CPU per
    request is read from `servers` (one for all targets, or one per target name)."""
    plan = run.plan
    c = concurrency or plan.concurrencies[0]
    rounds = rounds or plan.path_rounds
    slice_s = slice_s or max(1, round(plan.path_throughput_s / rounds))  # wrk takes whole seconds

    def server_of(name: str) -> Server:
        return servers if isinstance(servers, Server) else servers[name]

    out: dict[str, dict[str, object]] = {name: {} for name in targets}
    for name, target in targets.items():
        if name not in without_c1:
            out[name]["c1"] = run.load(
                target,
                1,
                duration_s=latency_s or plan.path_latency_s,
                server=server_of(name),
                total=plan.path_python_total,
            )
    slices: dict[str, list[dict[str, object]]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, target in targets.items():
            # The c=1 loads have warmed the servers (a target without one was warmed before this).
            slices[name].append(
                run.load(
                    target,
                    c,
                    duration_s=slice_s,
                    server=server_of(name),
                    warmup=False,
                    total=plan.path_python_total,
                )
            )
    for name in targets:
        out[name][f"c{c}"] = _combined(slices[name])
    return out


def _measure(
    run: Run, server: Server, targets: dict[str, Target], *, without_c1: frozenset[str] = frozenset()
) -> dict[str, dict[str, object]]:
    return measure_interleaved(run, targets, server, without_c1=without_c1)


def _paths(run: Run) -> dict[str, dict[str, object]]:
    paths = run.results.setdefault("paths", {})
    assert isinstance(paths, dict)
    return paths


def measure_paths(run: Run, server: Server) -> None:
    """Each new path on `server`, the one-worker all-on gateway whose /v1/chat c=1 figures are
    `gateway.1.c1` / `c1_openai`; at c=N /v1/chat takes its turn in the rounds too (`paths.chat_*`)."""
    run.log(f"- the API paths on the same gateway (c=N: {run.plan.path_rounds} rounds over the six)")
    references = frozenset(path.id for path in API_PATHS if path.kind == "reference")
    targets = {path.id: api_target(server, path) for path in API_PATHS}
    for name, measured in _measure(run, server, targets, without_c1=references).items():
        _paths(run).setdefault(name, {}).update(measured)
    # The translated row of issue 12 compares two c=1 p50s ~0.2 ms apart: one after the other they moved
    # by ±0.5 ms between runs on this shared machine, so both paths also take c=1 in interleaved slices.
    pair = {name: targets[name] for name in TRANSLATED_PAIR}
    run.log(f"- {' vs '.join(TRANSLATED_PAIR)} at c=1, {run.plan.path_rounds + 1} interleaved rounds")
    interleaved = measure_interleaved(
        run, pair, server, without_c1=frozenset(pair), rounds=run.plan.path_rounds + 1, concurrency=1
    )
    run.results["translated_c1"] = {name: node["c1"] for name, node in interleaved.items()}


def stream_paths(run: Run, server: Server) -> None:
    """One streamed variant of every path, on the SSE-upstream gateway that `streaming` measures."""
    for path in API_PATHS:
        if path.route == "/v1/chat":
            continue  # `streaming.anthropic` / `streaming.openai`
        target = api_target(server, path, stream=True)
        result = run.sse(target, gateway=True, expect=stream_marker(path))
        _paths(run).setdefault(path.id, {})["sse"] = result


def gateway_file(upstream: Upstream) -> str:
    """The router's file: one deployment per provider on the fake upstream, and an alias whose first
    target (the Claude model) is healthy, so that it never falls back."""
    return json.dumps(
        {
            "deployments": [
                {
                    "name": "bench-anthropic",
                    "provider": "anthropic",
                    "base_url": upstream.json_url,
                    "api_key_env": "ANTHROPIC_API_KEY",
                    "models": ["claude-*"],
                },
                {
                    "name": "bench-openai",
                    "provider": "openai",
                    "base_url": f"{upstream.json_url}/v1",
                    "api_key_env": "OPENAI_API_KEY",
                    "models": ["gpt-*"],
                },
            ],
            "models": {ALIAS: {"strategy": "fallback", "targets": [MODEL_ANTHROPIC, MODEL_OPENAI]}},
        },
        indent=1,
    )  # JSON is YAML


def _not_routed(server: Server) -> str | None:
    """None when the alias is served through the router, else why not."""
    target = api_target(server, CHAT_ANTHROPIC, key=CLIENT_KEY, model=ALIAS)
    response = httpx.post(target.url, content=target.body, headers=target.headers, timeout=10)
    if "x-llm-deployment" not in response.headers:
        return (
            f"router not integrated in this build (issue 11): the alias got {response.status_code} "
            "without X-LLM-Deployment"
        )
    if response.status_code != 200:
        raise RuntimeError(f"alias request: {response.status_code} {response.text[:500]}")
    return None


def extras_env(run: Run, upstream: Upstream) -> dict[str, str]:
    """What the gateway of `keys_and_alias` adds: the admin API, prices and the router's file. Its
    DATABASE_URL is every bench gateway's own SQLite database (bench.gateway.start_gateway)."""
    config = run.workdir / "router" / "gateway.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(gateway_file(upstream))
    return {**admin_env(), "GATEWAY_CONFIG": str(config)}


def keys_and_alias(run: Run, upstream: Upstream) -> None:
    """One gateway with managed keys (ledger, admin API, prices) and the router's file; on it /v1/chat
    with a plain key naming the model directly, the same with a budgeted managed key (issue 10), and with
    the plain key naming an alias whose first target is that model (issue 11). Each comparison changes
    one thing against the first."""
    env = extras_env(run, upstream)
    # DATABASE_URL: the gateway's own SQLite database in a temporary folder (bench.gateway.start_gateway).
    # Its own managed key is not made here: the comparison creates one below, next to the plain key.
    features = Features(managed_key=False)
    server = run.gateway("gateway-keys-router-1w", upstream, features=features, extra_env=env)
    where = {"route": CHAT_ANTHROPIC.route, "model": CHAT_ANTHROPIC.model, "gateway": server.name}
    keys: dict[str, object] = dict(where)
    router: dict[str, object] = {**where, "alias": ALIAS}
    try:
        created = create_key(server.url)
        not_routed = _not_routed(server)
        if isinstance(created, str):
            run.log(f"- budgeted key skipped: {created}")
            keys["skipped"] = created
        if not_routed is not None:
            run.log(f"- router alias skipped: {not_routed}")
            router["skipped"] = not_routed
        if isinstance(created, str) and not_routed is not None:
            return
        targets = {"plain": api_target(server, CHAT_ANTHROPIC, key=CLIENT_KEY)}
        if not isinstance(created, str):
            budgeted = api_target(server, CHAT_ANTHROPIC, key=str(created["key"]))
            targets["budgeted"] = replace(budgeted, name=f"{budgeted.name}-budgeted-key")
        if not_routed is None:
            targets["alias"] = api_target(server, CHAT_ANTHROPIC, key=CLIENT_KEY, model=ALIAS)
        run.log(f"- /v1/chat with {', '.join(targets)} (plain key, model named directly, is the reference)")
        measured = _measure(run, server, targets)
        keys["plain"] = router["direct_model"] = measured["plain"]
        if "budgeted" in measured:
            keys["limits"] = limits()
            keys["budgeted"] = measured["budgeted"]
            keys["budgeted_usage_after"] = key_usage(server.url, created["id"])  # type: ignore[index]
        if "alias" in measured:
            router["alias_model"] = measured["alias"]
    finally:
        run.results["keys"] = keys
        run.results["router"] = router
        run.release(server)
