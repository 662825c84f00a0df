"""Our gateway against the LiteLLM proxy on the same job, in the same minutes.

Both run one worker behind the same fake upstream and receive the same request: OpenAI Chat Completions,
`gpt-4o`, at `/v1/chat/completions`. Ours has everything on (a managed key with a token limit and a budget,
the Redis rate limit, the usage ledger, OTLP at 100 %, the JSON access log); LiteLLM is set up as fast as
it goes (bench.gateway.litellm_config). c=1 one after the other, then c=N in interleaved slices, so that the
throughput ratio and both CPU-per-request figures come from the same minutes of a shared machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import paths
from bench.gateway import Server
from bench.targets import PATHS_BY_ID, api_target, litellm_target

if TYPE_CHECKING:
    from bench.harness import Run

ROUTE = PATHS_BY_ID["completions_openai"]


def measure(run: Run, gateway: Server, litellm: Server) -> dict[str, object]:
    """`{"gateway": {"c1", "c<N>"}, "litellm": {"c1", "c<N>"}, …}`, both through the same request."""
    plan = run.plan
    targets = {"gateway": api_target(gateway, ROUTE), "litellm": litellm_target(litellm)}
    run.log(
        f"- gateway vs LiteLLM on {ROUTE.route} → {ROUTE.model}: c=1 each, then c={plan.concurrencies[0]} in "
        f"{plan.versus_rounds} interleaved rounds of {plan.versus_slice_s} s"
    )
    measured = paths.measure_interleaved(
        run,
        targets,
        {"gateway": gateway, "litellm": litellm},
        latency_s=plan.versus_latency_s,
        slice_s=plan.versus_slice_s,
        rounds=plan.versus_rounds,
    )
    return {
        "route": ROUTE.route,
        "model": ROUTE.model,
        "gateway_key": gateway.key_info,
        **measured,
    }
