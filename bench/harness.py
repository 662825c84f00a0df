"""One benchmark run: fake upstream, gateway variants, load, streams, concurrency; returns the results."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import keys, paths, streams, versus
from bench.gateway import (
    Features,
    RssSampler,
    Server,
    gateway_env,
    litellm_available,
    litellm_setup,
    start_gateway,
    start_litellm,
)
from bench.load import Target, run_load
from bench.machine import litellm_version, load_average, machine_info
from bench.otlp_sink import OtlpSink
from bench.targets import direct_target, gateway_target, litellm_target
from bench.upstream import (
    MODEL_ANTHROPIC,
    MODEL_OPENAI,
    STREAM_CHUNKS,
    Upstream,
    configure_emulator,
    start_emulator,
    start_nginx,
)

_OFF = Features.all_off()
FEATURE_VARIANTS: dict[str, Features] = {
    "all_off": _OFF,
    "auth_only": replace(_OFF, auth=True),  # a plain key from API_KEYS
    "managed_key_only": replace(_OFF, auth=True, managed_key=True),  # token limit, budget, ledger
    "rate_limit_only": replace(_OFF, rate_limit=True),
    "tracing_only": replace(_OFF, tracing=True),
    "access_log_only": replace(_OFF, access_log=True),
    "all_on": Features.all_on(),
}


@dataclass(frozen=True)
class Plan:
    """How much of everything to do: the full run, or the smoke run `make test` uses."""

    smoke: bool
    use_wrk: bool
    upstream: str  # "nginx" or "emulator"
    compare: bool
    latency_s: float = 10.0
    throughput_s: float = 8.0
    warmup_s: float = 2.0
    python_c1_total: int = 150
    python_cn_total: int = 300
    concurrencies: tuple[int, ...] = (32, 256)
    worker_counts: tuple[int, ...] = (1, 2)
    sse_streams: int = 300
    # 5,000 streams of 60 s opened at 250/s: all open at once after 20 s, and still all open if the
    # opening lags by up to half a minute (with 30 s streams on a slower machine the first ones ended
    # before the last opened: 4,786 at most at once). Opened in one burst, the Redis rate-limit checks
    # queue behind each other past their timeout (503 rate_limit_unavailable).
    hold_streams: int = 5000
    hold_chunks: int = 10
    hold_chunk_delay_s: float = 6.0
    hold_open_per_s: float = 250.0
    features: tuple[str, ...] = tuple(FEATURE_VARIANTS)
    feature_latency_s: float = 8.0
    feature_throughput_s: float = 8.0
    profile_s: float = 20.0
    # The rows of issues 9-11 (compatible endpoints, managed keys, router): c=1 per target, then c=N in
    # `path_rounds` interleaved slices per target, so that each ratio compares the same minutes.
    path_latency_s: float = 6.0
    path_throughput_s: float = 6.0
    path_rounds: int = 3
    path_python_total: int | None = None  # requests per load without wrk (smoke: a few, no timing claims)
    # Gateway vs LiteLLM (bench.versus): c=1 per server, then c=N in interleaved slices.
    versus_latency_s: float = 8.0
    versus_slice_s: int = 2
    versus_rounds: int = 4
    reuse_servers: bool = False  # smoke: one emulator-backed gateway serves JSON, SSE and the held streams

    @classmethod
    def smoke_plan(cls) -> Plan:
        return cls(
            smoke=True,
            use_wrk=False,
            upstream="emulator",
            compare=False,
            python_c1_total=50,
            python_cn_total=100,
            concurrencies=(8,),
            worker_counts=(1,),
            sse_streams=10,
            hold_streams=50,
            hold_chunks=3,
            hold_chunk_delay_s=0.2,
            hold_open_per_s=0.0,
            features=(),  # another gateway start: too slow for `make test`
            profile_s=0.0,
            reuse_servers=True,
            path_rounds=1,
            path_python_total=30,
        )


@dataclass
class Run:
    plan: Plan
    workdir: Path
    log: Callable[[str], None]
    results: dict[str, object] = field(default_factory=dict)
    sink: OtlpSink | None = None
    _servers: dict[tuple[object, ...], Server] = field(default_factory=dict)

    # -- building blocks -------------------------------------------------------------------------
    def load(
        self,
        target: Target,
        connections: int,
        *,
        duration_s: float | None = None,
        server: Server | None = None,
        warmup: bool = True,
        total: int | None = None,
    ) -> dict[str, object]:
        plan = self.plan
        if plan.use_wrk and plan.warmup_s and warmup:
            run_load(
                target,
                connections=connections,
                duration_s=plan.warmup_s,
                total=0,
                use_wrk=True,
                workdir=self.workdir / "wrk",
            )
        c1 = connections == 1
        cpu_before = server.cpu_s() if server else 0.0
        result = run_load(
            target,
            connections=connections,
            duration_s=duration_s or (plan.latency_s if c1 else plan.throughput_s),
            total=total or (plan.python_c1_total if c1 else plan.python_cn_total),
            use_wrk=plan.use_wrk,
            workdir=self.workdir / "wrk",
        )
        if server is not None and result["requests"]:
            # CPU the server spent per request: robust to other load on the machine, unlike latency.
            cpu_ms = (server.cpu_s() - cpu_before) * 1000 / int(result["requests"])  # type: ignore[call-overload]
            result["server_cpu_ms_per_request"] = round(cpu_ms, 3)
        lat = result["latency_ms"]
        self.log(
            f"  {target.name} c={connections}: {result['rps']} req/s, p50 {lat['50']} ms, "  # type: ignore[index]
            f"p99 {lat['99']} ms, errors {result['errors']}"
        )  # type: ignore[index]
        return result

    def sse(self, target: Target, *, gateway: bool, expect: bytes | None = None) -> dict[str, object]:
        if expect is None:
            expect = b'data: {"delta"' if gateway else b"data: "
        result = streams.sse_timing(
            target, count=self.plan.sse_streams, expect=expect, expect_count=STREAM_CHUNKS
        )
        self.log(
            f"  {target.name}: ttfb p50 {result['ttfb_ms']['p50']} ms, total p50 "  # type: ignore[index]
            f"{result['total_ms']['p50']} ms, errors {result['errors']}"
        )  # type: ignore[index]
        return result

    def gateway(
        self,
        name: str,
        upstream: Upstream,
        *,
        stream: bool = False,
        workers: int = 1,
        features: Features | None = None,
        extra_env: dict[str, str] | None = None,
        checkout: Path | None = None,
    ) -> Server:
        if self.plan.reuse_servers:
            # Smoke: one gateway for everything, the keys and router variant included (a start is ~5 s).
            extra_env = {**paths.extras_env(self, upstream), **(extra_env or {})}
        env = gateway_env(
            upstream=upstream,
            stream=stream,
            workers=workers,
            features=features or Features.all_on(),
            otlp_endpoint=self.sink.endpoint if self.sink else None,
            otlp_protocol=self.sink.protocol if self.sink else "http/protobuf",
            extra=extra_env,
        )
        key = (*sorted(env.items()), ("checkout", str(checkout)))
        if key in self._servers:
            return self._servers[key]
        self.log(f"- starting {name} ({workers} worker{'s' if workers > 1 else ''})")
        server = start_gateway(name, env, workdir=self.workdir / "logs", checkout=checkout)
        if (features or Features.all_on()).managed_key:
            self._use_managed_key(server, stream=stream or upstream.kind == "emulator")
        if self.plan.reuse_servers:
            self._servers[key] = server
        return server

    def _use_managed_key(self, server: Server, *, stream: bool) -> None:
        """Every request to `server` from now on carries a managed key with a token limit and a budget.

        One request warms the key first, as any key in use is warm: a new key's budget counter is rebuilt
        from the ledger on its first reservation, and 1,000 streams opened at once on a cold key wait for
        that rebuild on a saturated worker (some got 503 budget_unavailable after its 5 s timeout, seen on
        2026-12-01). A stream is closed once its headers are in (the emulator paces its answers), a JSON
        call on the nginx upstream read to the end.
        """
        created = keys.create_key(server.url, name=f"bench-{server.name}")
        if isinstance(created, str):
            self.log(f"  managed key not available ({created}): the plain key from API_KEYS is used")
            server.key_info = {"kind": "plain (API_KEYS)", "managed_key_skipped": created}
            return
        server.client_key = str(created["key"])
        server.key_info = {"kind": "managed", "id": created["id"], "limits": keys.limits()}
        keys.warm_key(gateway_target(server, model=MODEL_ANTHROPIC, stream=stream))

    def release(self, server: Server) -> None:
        """Stop `server` unless the plan keeps servers for later scenarios."""
        if server not in self._servers.values():
            server.stop()

    # -- scenarios -------------------------------------------------------------------------------
    def direct(self, upstream: Upstream) -> None:
        self.log("- direct to the fake upstream (baseline)")
        anthropic = direct_target(upstream.json_url, provider="anthropic")
        out: dict[str, object] = {
            "c1": self.load(anthropic, 1),
            "c1_openai": self.load(direct_target(upstream.json_url, provider="openai"), 1),
        }
        for c in self.plan.concurrencies:
            out[f"c{c}"] = self.load(anthropic, c)
        out["sse_anthropic"] = self.sse(
            direct_target(upstream.sse_url, provider="anthropic", stream=True), gateway=False
        )
        out["sse_openai"] = self.sse(
            direct_target(upstream.sse_url, provider="openai", stream=True), gateway=False
        )
        self.results["direct"] = out

    def gateway_matrix(self, upstream: Upstream) -> None:
        matrix: dict[str, object] = {}
        for workers in self.plan.worker_counts:
            server = self.gateway(f"gateway-{workers}w", upstream, workers=workers)
            sampler = RssSampler(server)
            sampler.start()
            spans_before = self.sink.spans if self.sink else 0
            try:
                out: dict[str, object] = {
                    "c1": self.load(gateway_target(server, model=MODEL_ANTHROPIC), 1, server=server)
                }
                if workers == 1:
                    out["c1_openai"] = self.load(gateway_target(server, model=MODEL_OPENAI), 1, server=server)
                for c in self.plan.concurrencies:
                    out[f"c{c}"] = self.load(gateway_target(server, model=MODEL_ANTHROPIC), c, server=server)
                if workers == 1:
                    c = self.plan.concurrencies[0]
                    out[f"c{c}_openai"] = self.load(
                        gateway_target(server, model=MODEL_OPENAI), c, server=server
                    )
                    paths.measure_paths(self, server)
                out["libraries"] = server.libraries()
                out["key"] = server.key_info
            finally:
                out["rss"] = sampler.finish()
                self.release(server)
            out["spans_exported"] = (self.sink.spans - spans_before) if self.sink else 0
            matrix[str(workers)] = out
        self.results["gateway"] = matrix

    def streaming(self, upstream: Upstream) -> None:
        server = self.gateway("gateway-sse-1w", upstream, stream=True)
        try:
            self.results["streaming"] = {
                "anthropic": self.sse(
                    gateway_target(server, model=MODEL_ANTHROPIC, stream=True), gateway=True
                ),
                "openai": self.sse(gateway_target(server, model=MODEL_OPENAI, stream=True), gateway=True),
            }
            paths.stream_paths(self, server)
        finally:
            self.release(server)

    def features(self, upstream: Upstream) -> None:
        out: dict[str, object] = {}
        c = self.plan.concurrencies[0]
        for name in self.plan.features:
            server = self.gateway(f"features-{name}", upstream, features=FEATURE_VARIANTS[name])
            try:
                target = gateway_target(server, model=MODEL_ANTHROPIC)
                out[name] = {
                    "c1": self.load(target, 1, duration_s=self.plan.feature_latency_s, server=server),
                    f"c{c}": self.load(target, c, duration_s=self.plan.feature_throughput_s, server=server),
                }
            finally:
                self.release(server)
        self.results["features"] = out

    def concurrency(self, upstream: Upstream | None = None) -> None:
        """The held streams, on an emulator of their own (or, reusing servers, on `upstream`)."""
        plan = self.plan
        self.log(
            f"- {plan.hold_streams} concurrent streams on one worker (emulator: {plan.hold_chunks} chunks, "
            f"{plan.hold_chunk_delay_s}s apart)"
        )
        hold_config = {"chunks": plan.hold_chunks, "chunk_delay_s": plan.hold_chunk_delay_s}
        shared = plan.reuse_servers and upstream is not None and upstream.kind == "emulator"
        if shared:
            assert upstream is not None
            configure_emulator(upstream, hold_config)
            emulator = upstream
        else:
            emulator = start_emulator(self.workdir / "emulator", config=hold_config)
        server = None
        try:
            server = self.gateway("gateway-hold-1w", emulator, stream=True, extra_env=streams.HOLD_ENV)
            result = streams.hold_streams(
                gateway_target(server, model=MODEL_ANTHROPIC, stream=True),
                streams=plan.hold_streams,
                worker_pid=server.workers[0],
                health_url=server.url,
                expect_deltas=plan.hold_chunks,
                workdir=self.workdir,
                open_per_s=plan.hold_open_per_s,
            )
            result["chunks"] = plan.hold_chunks
            result["chunk_delay_s"] = plan.hold_chunk_delay_s
            self.log(
                f"  completed {result['completed']}/{result['streams']}, errors {result['errors']}, "
                f"{result['kib_per_stream']} KiB/stream, healthz p99 under load "
                f"{result['healthz_under_load']['p99_ms']} ms"
            )  # type: ignore[index]
            self.results["concurrency"] = result
        finally:
            if server is not None:
                self.release(server)
            if not shared:
                emulator.stop()

    def litellm(self, upstream: Upstream) -> None:
        if not litellm_available():
            self.log("- LiteLLM venv missing: comparison skipped")
            self.results["litellm"] = None
            return
        self.log("- LiteLLM proxy (1 worker, no database, set up as fast as it goes) next to the gateway")
        server = start_litellm("litellm", upstream, stream=False, workdir=self.workdir / "logs")
        gateway = None
        sampler = RssSampler(server)
        sampler.start()
        out: dict[str, object] = {}
        try:
            gateway = self.gateway("gateway-vs-litellm-1w", upstream)
            side_by_side = versus.measure(self, gateway, server)
            self.results["versus_litellm"] = side_by_side
            lite = side_by_side["litellm"]
            assert isinstance(lite, dict)
            out["c1_openai"] = lite["c1"]
            out.update({k: v for k, v in lite.items() if k != "c1"})
            for c in self.plan.concurrencies[1:]:
                out[f"c{c}"] = self.load(litellm_target(server), c, server=server)
        finally:
            out["rss"] = sampler.finish()
            server.stop()
            if gateway is not None:
                self.release(gateway)
        server = start_litellm("litellm-sse", upstream, stream=True, workdir=self.workdir / "logs")
        try:
            expect = b"chat.completion.chunk"
            result = streams.sse_timing(
                litellm_target(server, stream=True),
                count=min(100, self.plan.sse_streams),
                expect=expect,
                expect_count=STREAM_CHUNKS,
            )
            self.log(
                f"  litellm-sse: ttfb p50 {result['ttfb_ms']['p50']} ms, total p50 "  # type: ignore[index]
                f"{result['total_ms']['p50']} ms, errors {result['errors']}"
            )  # type: ignore[index]
            out["sse_openai"] = result
        finally:
            server.stop()
        out["version"] = litellm_version()
        out["setup"] = litellm_setup()
        self.results["litellm"] = out

    # -- the whole run ---------------------------------------------------------------------------
    def execute(self) -> dict[str, object]:
        plan = self.plan
        started = time.monotonic()
        self.results["meta"] = machine_info(plan)
        self.sink = OtlpSink().start()
        self.results["meta"]["otlp_protocol"] = self.sink.protocol  # type: ignore[index]
        upstream = (start_nginx if plan.upstream == "nginx" else start_emulator)(self.workdir / "upstream")
        self.log(f"fake upstream: {upstream.kind} (JSON {upstream.json_url}, SSE {upstream.sse_url})")
        try:
            self.direct(upstream)
            self.gateway_matrix(upstream)
            self.streaming(upstream)
            paths.keys_and_alias(self, upstream)
            self.features(upstream)
            self.concurrency(upstream)
            if plan.compare:
                self.litellm(upstream)
            if plan.profile_s > 0:
                from bench.profile import profile_gateway

                self.results["profile"] = profile_gateway(self, upstream)
        finally:
            for server in self._servers.values():
                server.stop()
            upstream.stop()
            self.sink.stop()
        self.results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)  # type: ignore[index]
        self.results["meta"]["load_average_at_end"] = load_average()  # type: ignore[index]
        return self.results
