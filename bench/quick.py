"""`python -m bench.quick`: a two-minute check of the hot path while optimising (not the report).

One worker with everything on behind the nginx fake upstream: c=1 latency and c=32 throughput with CPU per
request for both providers, then 100 streams of 50 chunks each. Prints one line per figure.

`python -m bench.quick --paths` (~2.5 min): the report's API-path tables instead: /v1/chat, the compatible
endpoints (same vendor and translated; JSON at c=1 and c=32, and streamed), the budgeted key and the
router alias where the build has them, with the ratios against /v1/chat.

`python -m bench.quick --litellm` (~1.5 min, needs bench/.litellm-venv): the throughput row against LiteLLM
only: both servers on `/v1/chat/completions → gpt-4o`, c=1 each, then c=32 interleaved (bench.versus).
"""

from __future__ import annotations

import argparse

from bench import paths, report_paths, versus
from bench.gateway import Features, start_litellm
from bench.harness import Plan, Run
from bench.otlp_sink import OtlpSink
from bench.procs import ROOT, install_cleanup
from bench.streams import sse_timing
from bench.targets import direct_target, gateway_target
from bench.upstream import MODEL_ANTHROPIC, MODEL_OPENAI, STREAM_CHUNKS, start_nginx


def api_paths() -> None:
    plan = Plan(
        smoke=False,
        use_wrk=True,
        upstream="nginx",
        compare=False,
        latency_s=5.0,
        throughput_s=5.0,
        warmup_s=1.0,
        concurrencies=(32,),
        worker_counts=(1,),
        sse_streams=100,
        path_latency_s=5.0,
        path_throughput_s=6.0,
    )
    run = Run(plan, ROOT / "bench/.work/quick-paths", print)
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    try:
        run.direct(upstream)
        run.gateway_matrix(upstream)
        run.streaming(upstream)
        paths.keys_and_alias(run, upstream)
    finally:
        upstream.stop()
        run.sink.stop()
    print("\n".join(report_paths.markdown_lines(run.results)))


def against_litellm() -> None:
    plan = Plan(smoke=False, use_wrk=True, upstream="nginx", compare=True, warmup_s=2.0, concurrencies=(32,))
    run = Run(plan, ROOT / "bench/.work/quick-litellm", print)
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    lite = start_litellm("litellm-quick", upstream, stream=False, workdir=run.workdir / "logs")
    gateway = run.gateway("gateway-quick-vs-litellm-1w", upstream)
    try:
        measured = versus.measure(run, gateway, lite)
    finally:
        run.release(gateway)
        lite.stop()
        upstream.stop()
        run.sink.stop()
    ours, theirs = measured["gateway"], measured["litellm"]
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    rps, lite_rps = ours["c32"]["rps"], theirs["c32"]["rps"]
    cpu, lite_cpu = (node["c32"].get("server_cpu_ms_per_request") for node in (ours, theirs))
    print(
        f"c=32: {rps} vs {lite_rps} req/s = {rps / lite_rps:.2f}x; CPU/request {cpu} vs {lite_cpu} ms; "
        f"c=1 p50 {ours['c1']['latency_ms']['50']} vs {theirs['c1']['latency_ms']['50']} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quick", description=__doc__)
    parser.add_argument("--paths", action="store_true", help="the API paths next to /v1/chat")
    parser.add_argument("--litellm", action="store_true", help="the gateway against LiteLLM, interleaved")
    install_cleanup()
    args = parser.parse_args(argv)
    if args.paths:
        api_paths()
        return
    if args.litellm:
        against_litellm()
        return
    plan = Plan(smoke=False, use_wrk=True, upstream="nginx", compare=False, latency_s=5.0, throughput_s=5.0)
    run = Run(plan, ROOT / "bench/.work/quick", print)
    run.sink = OtlpSink().start()
    upstream = start_nginx(run.workdir / "upstream")
    server = run.gateway("gateway-quick-1w", upstream, features=Features.all_on())
    streaming = run.gateway("gateway-quick-sse-1w", upstream, stream=True, features=Features.all_on())
    try:
        direct = run.load(direct_target(upstream.json_url, provider="anthropic"), 1)
        for model in (MODEL_ANTHROPIC, MODEL_OPENAI):
            target = gateway_target(server, model=model)
            c1 = run.load(target, 1, server=server)
            c32 = run.load(target, 32, server=server)
            added = float(c1["latency_ms"]["50"]) - float(direct["latency_ms"]["50"])  # type: ignore[index]
            print(
                f"{model}: added p50 {added:.2f} ms, c=32 {c32['rps']} req/s, "
                f"CPU {c1.get('server_cpu_ms_per_request')} / {c32.get('server_cpu_ms_per_request')} ms/req"
            )
            sse = sse_timing(
                gateway_target(streaming, model=model, stream=True),
                count=100,
                expect=b'data: {"delta"',
                expect_count=STREAM_CHUNKS,
            )
            print(f"{model} stream: TTFB {sse['ttfb_ms']} total {sse['total_ms']} errors {sse['errors']}")
        print("RSS MiB:", [round(kib / 1024, 1) for kib in server.worker_rss_kib()])
        print(f"OTLP {run.sink.protocol}: {run.sink.spans} spans received")
    finally:
        run.release(server)
        run.release(streaming)
        upstream.stop()
        run.sink.stop()


if __name__ == "__main__":
    main()
