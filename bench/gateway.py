"""The gateway under gunicorn (the production config) and, for comparison, the LiteLLM proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.keys import admin_env
from bench.procs import (
    ROOT,
    Proc,
    children,
    cpu_seconds,
    free_port,
    http_ok,
    mapped_libraries,
    mib,
    rss_kib,
    start,
    wait_for,
    worker_memory,
)
from bench.upstream import MODEL_OPENAI, Upstream

CLIENT_KEY = "bench-client-key-0001"
LITELLM_KEY = "sk-bench-master-key"
LITELLM_VENV = ROOT / "bench" / ".litellm-venv"
REDIS_URL = "redis://127.0.0.1:6379/15"
_SCRUBBED = (
    "OTEL_", "ANTHROPIC_", "OPENAI_", "API_KEY", "RATE_LIMIT", "LLM_", "REDIS_", "LITELLM_",
    "DATABASE_", "BUDGET_", "USAGE_", "CACHE_", "ROUTER_", "MANAGED_KEY", "OTLP_",
)  # fmt: skip
_SCRUBBED_NAMES = {
    "LOG_LEVEL", "ALLOW_UNAUTHENTICATED", "WEB_CONCURRENCY", "BIND", "AUTH_FAILURE_LIMIT",
    "ADMIN_API_KEY", "TOKEN_LIMIT", "MODEL_PRICES", "GATEWAY_CONFIG", "DROP_UNSUPPORTED_PARAMS",
}  # fmt: skip


@dataclass(frozen=True)
class Features:
    """Which cross-cutting features are on; `all_on()` is the production shape ("everything on", issue 12):
    auth with a managed key that has a token limit and a budget (the usage ledger is always on), the Redis
    rate limit, OTLP traces and metrics at 100 % sampling, and the JSON access log."""

    auth: bool = True
    rate_limit: bool = True
    tracing: bool = True
    access_log: bool = True
    managed_key: bool = True  # requests carry a key from POST /admin/keys, not one from API_KEYS

    @classmethod
    def all_on(cls) -> Features:
        return cls()

    @classmethod
    def all_off(cls) -> Features:
        return cls(auth=False, rate_limit=False, tracing=False, access_log=False, managed_key=False)


def _base_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SCRUBBED) and key not in _SCRUBBED_NAMES
    }


def gateway_env(
    *,
    upstream: Upstream,
    stream: bool,
    workers: int,
    features: Features,
    otlp_endpoint: str | None,
    otlp_protocol: str = "http/protobuf",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """`otlp_endpoint` and `otlp_protocol` are the receiver's (bench/otlp_sink.py `OtlpSink`): the base URL
    for either protocol, since the gateway appends /v1/traces and /v1/metrics for http/protobuf."""
    base = upstream.sse_url if stream else upstream.json_url
    env = _base_env()
    env.update(
        {
            "ANTHROPIC_API_KEY": "bench-dummy-provider-key",
            "ANTHROPIC_BASE_URL": base,
            "OPENAI_API_KEY": "bench-dummy-provider-key",
            "OPENAI_BASE_URL": f"{base}/v1",
            "WEB_CONCURRENCY": str(workers),
            "LOG_LEVEL": "INFO" if features.access_log else "WARNING",
            "RATE_LIMIT": "100000000/minute",
            "AUTH_FAILURE_LIMIT": "100000000/minute",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if features.auth or features.managed_key:
        env["API_KEYS"] = CLIENT_KEY
        if features.managed_key:
            env.update(admin_env())
    else:
        env["ALLOW_UNAUTHENTICATED"] = "true"
    if features.rate_limit:
        env["REDIS_URL"] = REDIS_URL
    if features.tracing and otlp_endpoint:
        env.update(
            {
                "OTEL_SDK_DISABLED": "false",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": otlp_protocol,
                "OTEL_SERVICE_NAME": "llm-api-bench",
                # 100 % sampling, stated rather than left to the default.
                "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            }
        )
    else:
        env["OTEL_SDK_DISABLED"] = "true"
    env.update(extra or {})
    return env


@dataclass
class Server:
    """A running HTTP server under test: its base URL, process, and (for gunicorn) worker pids."""

    name: str
    url: str
    proc: Proc
    workers: list[int] = field(default_factory=list)
    scratch: Path | None = None  # removed once stopped (the gateway's SQLite database)
    relay: int | None = None  # the span relay the gunicorn master forked (llm_api/utils/otlp_relay.py)
    # The key the requests carry: API_KEYS' plain key, or the managed key created once the gateway answers.
    client_key: str = CLIENT_KEY
    key_info: dict[str, object] = field(default_factory=lambda: {"kind": "plain (API_KEYS)"})

    def worker_rss_kib(self) -> list[int]:
        pids = self.workers or [self.proc.pid]
        return [value for value in (rss_kib(pid) for pid in pids) if value is not None]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the workers (or the single server process) and the span relay,
        which exports their spans: its CPU is the requests' too."""
        pids = [*(self.workers or [self.proc.pid]), *([self.relay] if self.relay else [])]
        return sum(value for value in (cpu_seconds(pid) for pid in pids) if value is not None)

    def memory_mib(self) -> dict[str, object]:
        """RSS, PSS and USS (MiB) of each worker and of the gunicorn master (which holds the shared pages)."""
        pids = self.workers or [self.proc.pid]
        out: dict[str, object] = {"workers": [_mib(worker_memory(pid)) for pid in pids]}
        if self.workers:
            out["master"] = _mib(worker_memory(self.proc.pid))
        if self.relay:
            out["relay"] = _mib(worker_memory(self.relay))
        return out

    def libraries(self) -> dict[str, bool]:
        pid = self.workers[0] if self.workers else self.proc.pid
        return mapped_libraries(pid, ["uvloop", "httptools", "orjson", "grpc"])

    def stop(self) -> None:
        self.proc.stop(timeout=40)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _mib(memory: dict[str, int] | None) -> dict[str, float] | None:
    if memory is None:
        return None
    return {f"{name}_mib": round(kib / 1024, 1) for name, kib in memory.items()}


def start_gateway(name: str, env: dict[str, str], *, workdir: Path, checkout: Path | None = None) -> Server:
    """`gunicorn -c gunicorn.conf.py llm_api.main:app` with `env`; waits until every worker answers.

    Each gateway gets its own SQLite database (managed keys, usage ledger) in a fresh temporary folder,
    never the default `./data/llm_api.db` of the worktree. `checkout`: run the code and the gunicorn
    config of another checkout (e.g. a `git worktree`, bench.ab) instead of this one.
    """
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix=f"llm-api-bench-{name}-"))
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{scratch / 'gateway.db'}",
        **env,
        "BIND": f"127.0.0.1:{port}",
        **({"PYTHONPATH": str(checkout)} if checkout is not None else {}),
    }
    gunicorn = Path(os.environ.get("BENCH_VENV_BIN", ROOT / ".venv" / "bin")) / "gunicorn"
    proc = start(
        name,
        [str(gunicorn), "-c", "gunicorn.conf.py", "llm_api.main:app"],
        log=workdir / f"{name}.log",
        env=env,
        cwd=checkout,
    )
    url = f"http://127.0.0.1:{port}"
    wanted = int(env["WEB_CONCURRENCY"])
    log = workdir / f"{name}.log"

    def workers() -> list[int]:
        relay = relay_pid(log)
        return [pid for pid in children(proc.pid) if pid != relay]

    wait_for(
        lambda: len(workers()) >= wanted and http_ok(f"{url}/healthz"), what=f"gateway {name}", proc=proc
    )
    # Every worker runs its lifespan before it accepts: give the slowest a moment, then warm them.
    time.sleep(0.5 * wanted)
    for _ in range(20 * wanted):
        http_ok(f"{url}/healthz")
    return Server(name, url, proc, workers(), scratch, relay=relay_pid(log))


def relay_pid(log: Path) -> int | None:
    """The span relay's pid, from the master's "span relay started" line (None: the gateway runs none)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if '"span relay started"' in line:
            try:
                pid = json.loads(line).get("relay_pid")
            except ValueError:
                continue
            if isinstance(pid, int):
                return pid
    return None


# The cost map from the package (no fetch at start-up), only errors logged (uvicorn's access log off with
# it), no telemetry, no admin UI.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "DISABLE_ADMIN_UI": "True",
    "PYTHONUNBUFFERED": "1",
}


def litellm_setup() -> dict[str, object]:
    """How LiteLLM was run, for the report: its environment, its config (the fake upstream's address
    aside) and whether the modules that make it fast were importable in its venv."""
    python = LITELLM_VENV / "bin" / "python"
    modules = ("httptools", "uvloop", "aiohttp", "opentelemetry.sdk")
    probe = "import importlib.util as u, sys; print(*(bool(u.find_spec(m)) for m in sys.argv[1:]))"
    done = subprocess.run([str(python), "-c", probe, *modules], capture_output=True, text=True, check=False)
    found = done.stdout.split()
    return {
        "env": LITELLM_ENV,
        "argv": "--num_workers 1 (uvicorn, in-process)",
        "config": litellm_config_text("<fake upstream>"),
        "modules": {m: f == "True" for m, f in zip(modules, found, strict=False)},
    }


def litellm_available() -> bool:
    return (LITELLM_VENV / "bin" / "litellm").exists()


def litellm_config(upstream: Upstream, *, stream: bool) -> str:
    """LiteLLM set up as fast as it goes for the same job (docs/performance.md, "LiteLLM, set up as fast as
    it goes"): the master key authenticates (our gateway authenticates too), no database, no callbacks,
    spend and error logs off, no retries (the fake upstream never fails), no `drop_params` (the request has
    nothing to drop). aiohttp is its default transport and uvloop its default loop."""
    return litellm_config_text(upstream.sse_url if stream else upstream.json_url)


def litellm_config_text(base: str) -> str:
    return (
        "model_list:\n"
        f"  - model_name: {MODEL_OPENAI}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL_OPENAI}\n"
        f"      api_base: {base}/v1\n"
        "      api_key: bench-dummy-provider-key\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  num_retries: 0\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
        "  disable_spend_logs: true\n"
        "  disable_error_logs: true\n"
    )


def start_litellm(name: str, upstream: Upstream, *, stream: bool, workdir: Path) -> Server:
    """The LiteLLM proxy, one worker (uvicorn serves in the process itself), no database, on the same fake
    upstream."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.yaml"
    config.write_text(litellm_config(upstream, stream=stream))
    port = free_port()
    env = _base_env()
    env.update(LITELLM_ENV)
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config", str(config),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--num_workers", "1",
    ]  # fmt: skip
    proc = start(name, argv, log=workdir / f"{name}.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/health/liveliness"), what=f"litellm {name}", proc=proc, timeout=180)
    time.sleep(1.0)
    # With --num_workers 1, uvicorn serves in the process it was started as: measure that one (a helper
    # child, if a version starts one, must not be taken for the worker).
    return Server(name, url, proc, [proc.pid], client_key=LITELLM_KEY, key_info={"kind": "master key"})


class RssSampler(threading.Thread):
    """Samples the workers' RSS every 0.2 s; keeps the per-worker peak."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.idle = server.worker_rss_kib()
        self.idle_memory = server.memory_mib()
        self.peak = list(self.idle)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            for i, value in enumerate(self.server.worker_rss_kib()):
                if i < len(self.peak):
                    self.peak[i] = max(self.peak[i], value)

    def finish(self) -> dict[str, object]:
        self._stop_event.set()
        self.join(timeout=2)
        after = self.server.worker_rss_kib()
        after_memory = self.server.memory_mib()
        workers = [m for m in after_memory["workers"] if m is not None]  # type: ignore[attr-defined]
        return {
            "idle_mib": [mib(v) for v in self.idle],
            "peak_mib": [mib(v) for v in self.peak],
            "after_load_mib": [mib(v) for v in after],
            "after_load_pss_mib": [m["pss_mib"] for m in workers],
            "after_load_uss_mib": [m["uss_mib"] for m in workers],
            "relay_after_load": after_memory.get("relay"),  # one span relay per gateway, not per worker
            # {"workers": [{"rss_mib", "pss_mib", "uss_mib"} per worker], "master": {...}}: USS is what
            # each worker alone holds (what one more worker costs), PSS its share of the pages it maps.
            "memory": {"idle": self.idle_memory, "after_load": after_memory},
        }
