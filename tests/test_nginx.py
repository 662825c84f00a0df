"""The real nginx (deploy/nginx.conf) in front of two real gunicorn instances sharing one Redis:
SSE passes delta by delta, the body limit matches the app's, and the per-key limit holds across both."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ROOT,
    Emulator,
    Gateway,
    free_port,
    gateway_env,
    run_gateway,
    stop_process,
    wait_ready,
    wait_until,
)

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
REDIS_URL = "redis://127.0.0.1:6379/5"
LIMIT = 5


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.fail("nginx is not installed: run `make services` (scripts/ensure-services.sh)")
    return found


def render_test_config(upstreams: list[str], port: int, prefix: Path) -> str:
    """deploy/nginx.conf with loopback upstreams, a loopback listen port and paths under `prefix`."""
    conf = NGINX_CONF.read_text()
    conf, count = re.subn(
        r"^(\s*)server app:8000 ([^;]*);$",
        lambda m: "".join(f"{m.group(1)}server {address} {m.group(2)};\n" for address in upstreams).rstrip(
            "\n"
        ),
        conf,
        flags=re.M,
    )
    assert count == 1, "deploy/nginx.conf: expected one `server app:8000 ...;` line in the upstream block"
    conf, count = re.subn(r"^(\s*)listen 8080;$", rf"\1listen 127.0.0.1:{port};", conf, flags=re.M)
    assert count == 1
    conf = conf.replace("/tmp/nginx", f"{prefix}/nginx")
    conf = conf.replace("access_log /dev/stdout json;", f"access_log {prefix}/access.log json;")
    return conf


@dataclass
class Nginx:
    base_url: str
    proc: subprocess.Popen[bytes]
    prefix: Path

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def run_nginx(upstreams: list[str]) -> Iterator[Nginx]:
    prefix = Path(tempfile.mkdtemp(prefix="llm-api-nginx-"))
    # nginx's workers (nobody, when the tests run as root) buffer large bodies under the prefix, as they
    # do under /tmp in production.
    prefix.chmod(0o755)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_test_config(upstreams, port, prefix))
    binary = nginx_binary()
    check = subprocess.run(
        [binary, "-t", "-p", str(prefix), "-c", str(conf), "-e", "stderr"], capture_output=True
    )
    assert check.returncode == 0, check.stderr.decode()
    log = (prefix / "nginx.out").open("wb")
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    nginx = Nginx(f"http://127.0.0.1:{port}", proc, prefix)
    try:
        wait_ready(
            proc,
            lambda: httpx.get(f"{nginx.base_url}/healthz").status_code == 200,
            name="nginx",
            output=(prefix / "nginx.out").read_text,
            timeout=10,
        )
        yield nginx
    finally:
        stop_process(proc, timeout=10)
        log.close()
        shutil.rmtree(prefix, ignore_errors=True)


@dataclass
class Stack:
    nginx: Nginx
    gateways: list[Gateway]
    keys: list[str]


@pytest.fixture(scope="module")
def stack(emulator: Emulator) -> Iterator[Stack]:
    """Two gunicorn instances (one worker each) on different ports, one Redis, one nginx."""
    keys = [f"nginx-test-key-{uuid.uuid4().hex}" for _ in range(3)]  # fresh buckets in the shared Redis
    env = gateway_env(
        emulator,
        API_KEYS=",".join(keys),
        REDIS_URL=REDIS_URL,
        RATE_LIMIT=f"{LIMIT}/minute",
        RATE_LIMIT_FAIL_CLOSED="true",
        WEB_CONCURRENCY="1",
    )
    with ExitStack() as exit_stack, ThreadPoolExecutor(max_workers=2) as pool:
        # Start both instances at once (start-up is dominated by imports).
        starting = [pool.submit(exit_stack.enter_context, run_gateway(env)) for _ in range(2)]
        gateways = [future.result() for future in starting]
        upstreams = [gw.base_url.removeprefix("http://") for gw in gateways]
        nginx = exit_stack.enter_context(run_nginx(upstreams))
        yield Stack(nginx, gateways, keys)


def test_rendered_config_keeps_the_production_directives(tmp_path: Path) -> None:
    conf = render_test_config(["127.0.0.1:1", "127.0.0.1:2"], 9, tmp_path)
    for directive in (
        "proxy_buffering off;",
        "client_max_body_size 32m;",
        "proxy_read_timeout 130s;",
        "keepalive 64;",
        'proxy_set_header Connection "";',
        "proxy_http_version 1.1;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
    ):
        assert directive in conf
    assert "server 127.0.0.1:1 max_fails=3 fail_timeout=10s;" in conf and "app:8000" not in conf


def test_stream_arrives_delta_by_delta_through_nginx(stack: Stack, emu: Emulator) -> None:
    chunks, delay = 6, 0.3
    emu.configure(text=" ".join(f"d{i}" for i in range(chunks)), chunks=chunks, chunk_delay_s=delay)
    arrivals: list[float] = []
    events: list[str] = []
    headers = {"Authorization": f"Bearer {stack.keys[2]}"}
    body = {"stream": True, "messages": [{"role": "user", "content": "stream please"}]}
    with (
        httpx.Client(base_url=stack.nginx.base_url, headers=headers, timeout=30) as client,
        client.stream("POST", "/v1/chat", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(line)
                arrivals.append(time.monotonic())
    assert len(events) == chunks + 1 and events[-1] == "data: [DONE]"
    # Unbuffered: the first delta arrived long before the last one was produced.
    assert arrivals[chunks - 1] - arrivals[0] >= (chunks - 2) * delay


def test_body_limit_matches_the_app(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.keys[2]}", "Content-Type": "application/json"}
    too_big = httpx.post(
        f"{stack.nginx.base_url}/v1/chat", content=b" " * (32 * 1024 * 1024 + 1), headers=headers
    )
    assert too_big.status_code == 413  # refused by nginx, before gunicorn
    assert "x-request-id" not in too_big.headers
    # A body with images (larger than a text-only one) under the limit passes nginx to the app.
    large = httpx.post(
        f"{stack.nginx.base_url}/v1/chat", content=b" " * (9 * 1024 * 1024), headers=headers, timeout=60
    )
    assert large.status_code == 422 and "x-request-id" in large.headers


def test_per_key_limit_holds_across_both_instances(stack: Stack, emu: Emulator) -> None:
    limited, other, _ = stack.keys
    body = {"messages": [{"role": "user", "content": "hi"}]}

    def chat(key: str) -> httpx.Response:
        return httpx.post(
            f"{stack.nginx.base_url}/v1/chat",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    statuses = [chat(limited).status_code for _ in range(LIMIT + 3)]
    assert statuses == [200] * LIMIT + [429] * 3
    assert chat(other).status_code == 200  # keyed per API key, not per client address (all via nginx)

    # nginx spread the limited key's requests over both instances: the limit is shared, not per instance.
    def served() -> list[int]:
        return [sum(1 for r in gw.log_records() if r.get("path") == "/v1/chat") for gw in stack.gateways]

    wait_until(lambda: sum(served()) >= LIMIT + 4)  # access lines land once their responses are done
    assert all(count >= 2 for count in served()), served()
    upstreams = set(re.findall(r'"upstream":"([^"]+)"', stack.nginx.access_log()))
    assert upstreams >= {gw.base_url.removeprefix("http://") for gw in stack.gateways}
