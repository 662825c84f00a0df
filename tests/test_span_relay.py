"""The span relay (llm_api/utils/otlp_relay.py): under gunicorn the workers' spans reach the collector
through one process forked by the master, and still arrive when it is gone or the master stops.

Which process sent each export is read from /proc: the receiver's peer port, matched to the socket's
owner among the gateway's processes."""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from llm_api.utils.otlp_encoding import EncodedSpans
from tests.otlp_receiver import Receiver, run_http_receiver
from tests.support import CLIENT_KEY, Emulator, Gateway, gateway_env, run_gateway, wait_until


@dataclass
class Export:
    sender_pid: int | None
    request: Any


def exports_of(receiver: Receiver, request_id: str) -> list[Export]:
    """The trace exports holding a span of `request_id`, each with the pid of the process that sent it."""
    with receiver.received.lock:
        exports = list(zip(receiver.received.trace_senders, receiver.received.trace_requests, strict=True))
    return [
        Export(sender, request)
        for sender, request in exports
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        if any(
            kv.key == "llm_api.request_id" and kv.value.string_value == request_id for kv in span.attributes
        )
    ]


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    # Only the live connection to the receiver: an earlier one on the same ephemeral port may still sit
    # in TIME_WAIT (inode 0, no owner), and the port may be in use towards another destination.
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local = int(fields[1].rsplit(":", 1)[1], 16)
            remote = int(fields[2].rsplit(":", 1)[1], 16)
            if (local, remote) == (local_port, remote_port) and fields[9] != "0":
                return fields[9]
    return None


def pid_using_port(local_port: int, remote_port: int) -> int | None:
    inode = _socket_inode(local_port, remote_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    return int(entry)
        except OSError:
            continue
    return None


def relay_env(emulator: Emulator, receiver: Receiver, **overrides: str) -> dict[str, str]:
    settings = {
        "WEB_CONCURRENCY": "2",
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    return gateway_env(emulator, **{**settings, **overrides})


def chat(gateway: Gateway) -> str:
    request_id = f"relay-{uuid.uuid4().hex}"
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        response = client.post(
            "/v1/chat",
            json={"messages": [{"role": "user", "content": "Say hello."}]},
            headers={"Authorization": f"Bearer {CLIENT_KEY}", "X-Request-ID": request_id},
        )
    assert response.status_code == 200, response.text
    return request_id


def relay_pid(gateway: Gateway) -> int:
    started = wait_until(
        lambda: [r for r in gateway.log_records() if r.get("message") == "span relay started"]
    )
    pid = started[0]["relay_pid"]
    assert isinstance(pid, int)
    return pid


def worker_pids(export: Export) -> set[int]:
    return {
        kv.value.int_value
        for resource_spans in export.request.resource_spans
        for kv in resource_spans.resource.attributes
        if kv.key == "process.pid"
    }


def test_the_workers_spans_are_exported_by_the_relay(emulator: Emulator, emu: Emulator) -> None:
    with (
        run_http_receiver(sender_of=pid_using_port) as receiver,
        run_gateway(relay_env(emulator, receiver)) as gateway,
    ):
        relay = relay_pid(gateway)
        request_ids = [chat(gateway) for _ in range(6)]
        for request_id in request_ids:
            [export] = wait_until(lambda request_id=request_id: exports_of(receiver, request_id))
            assert export.sender_pid == relay
            # The spans still name the worker that served the request, not the relay.
            assert worker_pids(export) and relay not in worker_pids(export)
        serving = [r for r in gateway.log_records() if r.get("message") == "exporting telemetry over OTLP"]
        assert serving and all(record["span_relay"] is True for record in serving)


def test_without_the_relay_each_worker_exports_its_own_spans(emulator: Emulator, emu: Emulator) -> None:
    with (
        run_http_receiver(sender_of=pid_using_port) as receiver,
        run_gateway(relay_env(emulator, receiver, OTLP_SPAN_RELAY="false")) as gateway,
    ):
        request_id = chat(gateway)
        [export] = wait_until(lambda: exports_of(receiver, request_id))
        assert export.sender_pid in worker_pids(export)
        assert not [r for r in gateway.log_records() if r.get("message") == "span relay started"]


def test_when_the_relay_is_gone_the_workers_export_themselves(emulator: Emulator, emu: Emulator) -> None:
    with (
        run_http_receiver(sender_of=pid_using_port) as receiver,
        run_gateway(relay_env(emulator, receiver)) as gateway,
    ):
        relay = relay_pid(gateway)
        first = chat(gateway)
        wait_until(lambda: exports_of(receiver, first))
        os.kill(relay, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{relay}").exists(), timeout=10)

        # The batch that meets the dead relay is sent by its worker, and so are the next ones.
        for request_id in [chat(gateway) for _ in range(4)]:
            [export] = wait_until(lambda request_id=request_id: exports_of(receiver, request_id))
            assert export.sender_pid in worker_pids(export)
        assert "span relay unavailable" in gateway.output()
        assert gateway.proc.poll() is None  # the master serves on


def test_spans_left_at_shutdown_reach_the_collector_through_the_relay(
    emulator: Emulator, emu: Emulator
) -> None:
    # Only the workers' shutdown flush can deliver them, and then only the relay can send them.
    with run_http_receiver(sender_of=pid_using_port) as receiver:
        with run_gateway(relay_env(emulator, receiver, OTEL_BSP_SCHEDULE_DELAY="60000")) as gateway:
            relay = relay_pid(gateway)
            request_id = chat(gateway)
            assert not exports_of(receiver, request_id)
            assert gateway.stop() == 0
        # The master waited for the relay, so the export arrived before gunicorn exited.
        [export] = exports_of(receiver, request_id)
        assert export.sender_pid == relay
        assert not Path(f"/proc/{relay}").exists()


def test_joined_batches_are_one_valid_request() -> None:
    """What the relay does with batches waiting together: their bytes, concatenated, are one request
    holding every span (protobuf merges repeated fields)."""
    first = trace_service_pb2.ExportTraceServiceRequest()
    first.resource_spans.add().scope_spans.add().spans.add(name="a")
    second = trace_service_pb2.ExportTraceServiceRequest()
    second.resource_spans.add().scope_spans.add().spans.add(name="b")
    joined = EncodedSpans(first.SerializeToString() + second.SerializeToString(), 2)
    parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(joined.payload)
    assert [rs.scope_spans[0].spans[0].name for rs in parsed.resource_spans] == ["a", "b"]
    assert len(joined) == 2
