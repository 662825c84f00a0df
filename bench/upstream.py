"""The fake upstreams: a static nginx (one JSON port, one SSE port) or, without nginx, the emulator."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.procs import ROOT, Proc, free_port, http_ok, start, wait_for

STREAM_CHUNKS = 50
MODEL_ANTHROPIC = "claude-opus-4-5"
MODEL_OPENAI = "gpt-4o"
_COMPACT = {"separators": (",", ":")}


def _dumps(value: object) -> str:
    return json.dumps(value, **_COMPACT)  # type: ignore[arg-type]


def anthropic_json() -> str:
    return _dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": MODEL_ANTHROPIC,
            "content": [{"type": "text", "text": "Hello from the fake upstream."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 8},
        }
    )


def openai_json() -> str:
    return _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL_OPENAI,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the fake upstream."},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        }
    )


def anthropic_sse(chunks: int = STREAM_CHUNKS) -> str:
    def event(name: str, data: object) -> str:
        return f"event: {name}\ndata: {_dumps(data)}\n\n"

    message = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": MODEL_ANTHROPIC,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    parts = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for i in range(chunks):
        delta = {"type": "text_delta", "text": f"tok{i} "}
        parts.append(
            event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    parts.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    parts.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": chunks},
            },
        )
    )
    parts.append(event("message_stop", {"type": "message_stop"}))
    return "".join(parts)


def openai_sse(chunks: int = STREAM_CHUNKS) -> str:
    def chunk(choices: list[object], usage: object = None) -> str:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL_OPENAI,
            "choices": choices,
            "usage": usage,
        }
        return f"data: {_dumps(body)}\n\n"

    parts = []
    for i in range(chunks):
        delta: dict[str, str] = {"content": f"tok{i} "}
        if i == 0:
            delta["role"] = "assistant"
        finish = "stop" if i == chunks - 1 else None
        parts.append(chunk([{"index": 0, "delta": delta, "finish_reason": finish}]))
    parts.append(chunk([], {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}))
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def _nginx_literal(body: str) -> str:
    """An nginx single-quoted string; the bodies never hold the characters nginx would interpret."""
    for forbidden in ("'", "\\", "$"):
        if forbidden in body:
            raise ValueError(f"fake upstream body must not contain {forbidden!r}")
    return "'" + body.replace("\n", "\\n") + "'"


def _location(path: str, content_type: str, body: str) -> str:
    return (
        f"    location = {path} {{\n"
        f"      default_type {content_type};\n"
        f"      return 200 {_nginx_literal(body)};\n"
        f"    }}\n"
    )


def _file_location(path: str, content_type: str) -> str:
    """A static file answered to POST: the static module says 405, `error_page` turns that into the file
    (a `return` string is capped at 4 KiB by nginx's config parser; the 50-chunk streams are larger)."""
    return (
        f"    location = {path} {{\n"
        f"      default_type {content_type};\n"
        f"      error_page 405 =200 $uri;\n"
        f"    }}\n"
    )


def nginx_config(workdir: Path, json_port: int, sse_port: int) -> str:
    """Two servers: `json_port` always answers JSON, `sse_port` always a 50-chunk SSE stream."""
    sse_root = workdir / "sse"
    for path, body in (("v1/messages", anthropic_sse()), ("v1/chat/completions", openai_sse())):
        (sse_root / path).parent.mkdir(parents=True, exist_ok=True)
        (sse_root / path).write_text(body)
    sse = "text/event-stream"
    temp = "".join(
        f"  {name}_temp_path {workdir}/{name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "worker_processes 1;\n"
        "daemon off;\n"
        f"pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/nginx-error.log warn;\n"
        "events { worker_connections 8192; }\n"
        "http {\n"
        "  access_log off;\n"
        "  keepalive_requests 10000000;\n"
        "  keepalive_timeout 120s;\n"
        "  sendfile on;\n"
        "  tcp_nodelay on;\n"
        f"{temp}"
        "  server {\n"
        f"    listen 127.0.0.1:{json_port} backlog=4096;\n"
        + _location("/v1/messages", "application/json", anthropic_json())
        + _location("/v1/chat/completions", "application/json", openai_json())
        + "  }\n"
        "  server {\n"
        f"    listen 127.0.0.1:{sse_port} backlog=4096;\n"
        f"    root {sse_root};\n"
        + _file_location("/v1/messages", sse)
        + _file_location("/v1/chat/completions", sse)
        + "  }\n"
        "}\n"
    )


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


@dataclass
class Upstream:
    """Base URLs of the fake providers; `kind` is "nginx" or "emulator"."""

    kind: str
    json_url: str  # Anthropic base URL answering JSON; OpenAI's is `json_url + "/v1"`
    sse_url: str
    proc: Proc

    def stop(self) -> None:
        self.proc.stop()


def start_nginx(workdir: Path) -> Upstream:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    json_port, sse_port = free_port(), free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(workdir, json_port, sse_port))
    proc = start(
        "nginx",
        [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "nginx-error.log")],
        log=workdir / "nginx.out",
    )
    json_url, sse_url = f"http://127.0.0.1:{json_port}", f"http://127.0.0.1:{sse_port}"
    wait_for(
        lambda: proc.alive() and http_ok(f"{json_url}/v1/messages", method="POST"), what="nginx", proc=proc
    )
    return Upstream("nginx", json_url, sse_url, proc)


def start_emulator(workdir: Path, *, config: dict[str, object] | None = None) -> Upstream:
    """The project's emulator: one port answers JSON or SSE depending on the request's `stream`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start(
        "emulator",
        [sys.executable, "-m", "llm_api.emulator", "--host", "127.0.0.1", "--port", str(port)],
        log=workdir / f"emulator-{port}.log",
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: proc.alive() and http_ok(f"{url}/_emulator/health"), what="emulator", proc=proc)
    upstream = Upstream("emulator", url, url, proc)
    configure_emulator(upstream, {"chunks": STREAM_CHUNKS, **(config or {})})
    return upstream


def configure_emulator(upstream: Upstream, config: dict[str, object]) -> None:
    """POST /_emulator/config (fields not given keep their value)."""
    httpx.post(f"{upstream.json_url}/_emulator/config", json=config, timeout=5).raise_for_status()
