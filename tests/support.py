"""Test helpers: free ports, polling with a deadline, and real processes (emulator, gunicorn)."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
T = TypeVar("T")

CLIENT_KEY = "test-client-key-0001"
OTHER_CLIENT_KEY = "test-client-key-0002"
PROVIDER_KEY = "test-provider-key-0001"
# One SQLite file per test session (a test that needs its own database passes DATABASE_URL).
SESSION_DB_DIR = Path(tempfile.mkdtemp(prefix="llm-api-test-db-"))
SESSION_DATABASE_URL = f"sqlite+aiosqlite:///{SESSION_DB_DIR}/llm_api.db"


# A bound, not a wait: a loaded 2-core machine (several suites at once) can take ~40 s to import the app.
GATEWAY_START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # polling tolerates transient failures
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last error: {last_error!r})")


async def async_wait_until(
    check: Callable[[], T | Awaitable[T | None] | None], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """`wait_until` inside an event loop: poll `check` (a function or a coroutine function) without blocking
    the loop, until it returns something truthy, or raise TimeoutError after `timeout` seconds. Unlike
    `wait_until`, an exception from `check` ends the wait (these checks read in-process state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


async def async_inside_one_window(needed_s: float, *, period_s: float = 60.0) -> None:
    """Return once at least `needed_s` remain in the current epoch-aligned window of `period_s` (waiting for
    the next one if need be). `limits`' in-process sliding-window counter aligns its windows to the epoch and
    floors the previous window's weighted count, so a test that counts exact admissions across a window
    boundary would see one more admitted than the limit."""
    await async_wait_until(lambda: period_s - time.time() % period_s >= needed_s, timeout=needed_s + 1.0)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code < 500
    except httpx.HTTPError:
        return False


def wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    name: str,
    output: Callable[[], str],
    timeout: float,
) -> None:
    """Poll until `ready()` or the process exits; an exit is an error that quotes the process's output."""
    wait_until(lambda: proc.poll() is not None or ready(), timeout=timeout)
    if proc.poll() is not None:
        raise RuntimeError(f"{name} exited early:\n{output()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 5) -> int:
    """Send `sig`, wait up to `timeout` seconds, then kill; the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Emulator:
    """Drives the upstream emulator's control plane."""

    # A valid 1x1 transparent PNG: both emulated APIs check that image bytes match their media type.
    TINY_PNG_B64 = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAAC0lEQVR4nGNgAAIAAAUAAXpeqz8AAAAASUVORK5CYII="
    )

    def __init__(self, base_url: str, log_path: Path) -> None:
        self.base_url = base_url
        self.anthropic_url = base_url
        self.openai_url = f"{base_url}/v1"
        self.log_path = log_path
        self._http = httpx.Client(base_url=f"{base_url}/_emulator", timeout=5)

    def output(self) -> str:
        """Everything the emulator process printed (complete once it has stopped)."""
        return self.log_path.read_text(errors="replace")

    def reset(self) -> None:
        self._http.post("/reset").raise_for_status()

    def configure(self, **config: Any) -> None:
        self._http.post("/config", json=config).raise_for_status()

    def fail(self, *faults: dict[str, Any], provider: str | None = None) -> None:
        self._http.post("/faults", json={"faults": list(faults), "provider": provider}).raise_for_status()

    def script(self, *turns: dict[str, Any], provider: str | None = None) -> None:
        """Queue answers, one per generating request (FIFO): ``{"text": ..., "tool_calls": [...]}``."""
        self._http.post("/turns", json={"turns": list(turns), "provider": provider}).raise_for_status()

    def set_models(self, *models: dict[str, Any]) -> None:
        """Replace the model catalogue (``GET /v1/models``); ``reset()`` restores the default one."""
        self._http.post("/models", json={"models": list(models)}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    @staticmethod
    def fingerprint(secret: str) -> str:
        """How records show a credential: ``headers["x-api-key"] == Emulator.fingerprint(key)``,
        ``headers["authorization"] == f"Bearer {Emulator.fingerprint(key)}"``."""
        import hashlib

        return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]

    def requests(self) -> list[dict[str, Any]]:
        response = self._http.get("/requests")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def close(self) -> None:
        self._http.close()


@contextmanager
def run_emulator() -> Iterator[Emulator]:
    """The emulator as a real process on a free port, its output captured to a file."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="llm-api-emulator-", suffix=".log")[1])
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llm_api.emulator", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}"
    emulator = Emulator(base, log_path)
    try:
        wait_ready(
            proc,
            lambda: _http_ok(f"{base}/_emulator/health"),
            name="the emulator",
            output=emulator.output,
            timeout=20,
        )
        yield emulator
    finally:
        emulator.close()
        stop_process(proc)


@dataclass
class Gateway:
    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        import json

        records = []
        for line in self.output().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    def client(self, key: str | None = CLIENT_KEY, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        return stop_process(self.proc, sig=sig, timeout=timeout)


# Settings of the caller's environment that the test gateways never inherit.
_CALLER_SETTINGS = ("OTEL_", "ANTHROPIC_", "OPENAI_", "API_KEY", "RATE_LIMIT", "LLM_", "REDIS_")
_CALLER_SETTINGS += ("TOKEN_LIMIT", "BUDGET_", "MODEL_PRICES", "SPEND_")  # limits (llm_api.spend)
_CALLER_SETTINGS += ("OTLP_",)


def session_transport() -> str:
    """LLM_HTTP_CLIENT of every test gateway: TEST_LLM_HTTP_CLIENT (`make test-sdk`: the SDK clients)."""
    return os.environ.get("TEST_LLM_HTTP_CLIENT", "aiohttp")


def gateway_env(emulator: Emulator, **overrides: str) -> dict[str, str]:
    """Environment for a gateway pointed at the emulator, with fast retries for tests."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_CALLER_SETTINGS)}
    env.update(
        {
            "API_KEYS": f"{CLIENT_KEY},{OTHER_CLIENT_KEY}",
            "ANTHROPIC_API_KEY": PROVIDER_KEY,
            "ANTHROPIC_BASE_URL": emulator.anthropic_url,
            "OPENAI_API_KEY": PROVIDER_KEY,
            "OPENAI_BASE_URL": emulator.openai_url,
            "LLM_RETRY_WAIT_MIN_S": "0.02",
            "LLM_RETRY_WAIT_MAX_S": "0.2",
            "LLM_TIMEOUT_S": "3",
            "LLM_HTTP_CLIENT": session_transport(),
            "RATE_LIMIT": "100000/minute",
            "AUTH_FAILURE_LIMIT": "100000/minute",
            "OTEL_SDK_DISABLED": "true",
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": SESSION_DATABASE_URL,
        }
    )
    env.update(overrides)
    return env


def spawn_gunicorn(env: dict[str, str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    """`gunicorn -c gunicorn.conf.py llm_api.main:app` from the project root, its output into `output`."""
    return subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "llm_api.main:app"],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )


@contextmanager
def run_gateway(
    env: dict[str, str], *, port: int | None = None, ready_timeout_s: float = GATEWAY_START_TIMEOUT_S
) -> Iterator[Gateway]:
    """The real service under gunicorn (gunicorn.conf.py), its output captured to a file."""
    port = port or free_port()
    env = {**env, "BIND": f"127.0.0.1:{port}"}
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        prefix="llm-api-gunicorn-", suffix=".log", delete=False
    )
    proc = spawn_gunicorn(env, log_file)
    gateway = Gateway(f"http://127.0.0.1:{port}", proc, Path(log_file.name), env)
    try:
        wait_ready(
            proc,
            lambda: _http_ok(f"{gateway.base_url}/healthz"),
            name="gunicorn",
            output=gateway.output,
            timeout=ready_timeout_s,  # a loaded 2-core machine can take 20 s+ to import the SDKs
        )
        yield gateway
    finally:
        gateway.stop()
        log_file.close()
