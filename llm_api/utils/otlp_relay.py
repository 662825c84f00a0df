"""The span relay: one process, forked by the gunicorn master, that sends every worker's spans to the
OTLP collector, so the workers never spend their GIL on the export's HTTP or gRPC call.

Why: a worker's batch span processor exports from a thread of the worker, and whatever that thread runs
in Python holds the GIL, so a request arriving meanwhile waits. Encoding is cheap with the gateway's
encoder (~8 µs a span), but the exporter's HTTP call through `requests` is ~0.9 ms of Python per batch:
measured interleaved at c=1, the export added ~2.5 ms to the p99 (8.5 against 6.1 ms without encoding
or sending, and 5.9 ms with tracing off). With the relay a worker encodes its batch and writes it to a
Unix socket (`RelaySpanExporter`); the relay joins what is waiting and exports it with the official
exporter of the configured protocol, in its own process (so with its headers, compression, TLS, retries
and its own metrics).

Lifecycle: `start_relay` forks it from the master in `when_ready` (after the preload, so it shares the
master's pages); the workers find its address in this module's state, copied by their fork. It ends when
the master does: it watches a pipe whose only writer is the master (`forget_in_worker` closes the
workers' copies), sends what is left within `DRAIN_S` and exits. If it is gone, a worker exports its
batches itself, as without a relay, and tries the relay again after `RECONNECT_S`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llm_api.utils.otlp_encoding import EncodedSpans, encode_span_request
from llm_api.utils.processes import wait_or_kill

log = logging.getLogger("llm_api.telemetry")

# A frame: payload length and span count (unsigned 32-bit, big-endian), then the serialized
# ExportTraceServiceRequest.
FRAME_HEADER = struct.Struct(">II")
MAX_FRAME_BYTES = 64 * 1024 * 1024  # the HTTP exporter's default request size limit
# What the relay joins into one export (a 64-span batch is ~30 KiB), waiting at most LINGER_S for it.
JOIN_SPANS = 512
MAX_JOINED_BYTES = 4 * 1024 * 1024
LINGER_S = 0.1
SEND_TIMEOUT_S = 2.0
RECONNECT_S = 5.0
DRAIN_S = 4.0
# The signals the relay leaves to the master: it ends when the master does (its pipe closes).
_IGNORED_SIGNALS = (
    "SIGINT",
    "SIGTERM",
    "SIGHUP",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGWINCH",
    "SIGTTIN",
    "SIGTTOU",
)


@dataclass(frozen=True, slots=True)
class Relay:
    """A running relay, as the master and (through the fork) every worker see it."""

    pid: int
    address: str
    traces_endpoint: str
    protocol: str
    lifeline_fd: int  # the master's end of the pipe the relay watches; closed in the workers


_relay: Relay | None = None


def start_relay(
    traces_endpoint: str,
    protocol: str,
    exporter_factory: Callable[[], SpanExporter],
    logger: logging.Logger,
    *,
    close_in_relay: Sequence[int] = (),
) -> Relay | None:
    """In the master, before any worker is forked: fork the relay. None (the workers export themselves)
    when it cannot start. `close_in_relay`: the master's descriptors the relay must not keep open (its
    listening sockets)."""
    global _relay
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        directory = tempfile.mkdtemp(prefix="llm-api-relay-")  # mode 0700: only this user connects
        address = str(Path(directory) / "spans.sock")
        listener.bind(address)
        os.chmod(address, 0o600)
        listener.listen(64)
    except OSError as exc:  # e.g. no writable temporary folder: the workers export themselves
        listener.close()
        logger.warning("span relay not started", extra={"exception_type": type(exc).__name__})
        return None
    read_fd, write_fd = os.pipe()
    # Collected and frozen before the fork, as gunicorn's pre_fork does before each worker's: the relay's
    # collector then never walks the master's objects, and a collection in the master after the fork
    # (which writes the GC header of every object it walks, so the master copies those pages and leaves
    # the relay the only owner of the originals) does not happen. The relay's USS 54 -> 10 MiB after load.
    gc.collect()
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # the relay
        status = 1
        try:
            for fd in (write_fd, *close_in_relay):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _serve(listener, read_fd, exporter_factory, directory)
            status = 0
        except BaseException:  # noqa: S110 - nothing to report to: the workers fall back to exporting
            pass
        finally:
            os._exit(status)
    os.close(read_fd)
    listener.close()
    _relay = Relay(pid, address, traces_endpoint, protocol, write_fd)
    logger.info("span relay started", extra={"relay_pid": pid, "traces_endpoint": traces_endpoint})
    return _relay


def forget_in_worker() -> None:
    """In a worker just forked: close its copy of the master's pipe, so the relay sees the master's end."""
    if _relay is not None:
        with contextlib.suppress(OSError):
            os.close(_relay.lifeline_fd)


def stop_relay(timeout_s: float = DRAIN_S + 1) -> None:
    """In the master, as it exits (after its workers): let the relay send what it holds, then reap it."""
    global _relay
    relay, _relay = _relay, None
    if relay is None:
        return
    with contextlib.suppress(OSError):
        os.close(relay.lifeline_fd)
    wait_or_kill(relay.pid, timeout_s)


def _serve(
    listener: socket.socket, lifeline_fd: int, exporter_factory: Callable[[], SpanExporter], directory: str
) -> None:
    for name in _IGNORED_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    frames: queue.SimpleQueue[tuple[bytes, int] | None] = queue.SimpleQueue()
    readers: list[threading.Thread] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the master is gone
            reader = threading.Thread(target=_read_frames, args=(connection, frames), daemon=True)
            readers[:] = [*(r for r in readers if r.is_alive()), reader]  # workers come and go
            reader.start()

    def watch_master() -> None:
        while os.read(lifeline_fd, 1):
            pass
        # The master is exiting (its workers have stopped): no new connection; the readers finish what
        # the workers wrote before they exited.
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        deadline = time.monotonic() + DRAIN_S / 2
        for reader in list(readers):
            reader.join(max(0.0, deadline - time.monotonic()))
        frames.put(None)

    threading.Thread(target=accept, daemon=True).start()
    threading.Thread(target=watch_master, daemon=True).start()
    exporter = exporter_factory()
    try:
        _export_until_drained(frames, exporter)
    finally:
        exporter.shutdown()
        with contextlib.suppress(OSError):
            os.unlink(Path(directory) / "spans.sock")
            os.rmdir(directory)


def _export_until_drained(
    frames: queue.SimpleQueue[tuple[bytes, int] | None], exporter: SpanExporter
) -> None:
    """Export what the workers wrote, until the end mark (queued after every reader has finished).

    Batches that arrive within LINGER_S of the first are joined into one export (up to JOIN_SPANS spans
    or MAX_JOINED_BYTES): the workers send small batches, and each export is an HTTP or gRPC call."""
    while True:
        item = frames.get()
        if item is None:
            return
        payloads, count, size = [item[0]], item[1], len(item[0])
        deadline = time.monotonic() + LINGER_S
        ended = False
        while count < JOIN_SPANS and size < MAX_JOINED_BYTES:
            try:
                more = frames.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if more is None:
                ended = True
                break
            payloads.append(more[0])
            count += more[1]
            size += len(more[0])
        exporter.export(EncodedSpans(b"".join(payloads), count))
        if ended:
            return


def _read_frames(connection: socket.socket, frames: queue.SimpleQueue[tuple[bytes, int] | None]) -> None:
    with connection, connection.makefile("rb") as stream:
        while True:
            header = stream.read(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                return
            length, count = FRAME_HEADER.unpack(header)
            if length > MAX_FRAME_BYTES:
                return  # not a worker of ours: drop the connection
            payload = stream.read(length)
            if len(payload) < length:
                return  # the worker died mid-frame: a partial request is not sent
            frames.put((payload, count))


class RelaySpanExporter(SpanExporter):
    """A worker's span exporter when the master runs a relay: encode the batch, write it to the relay.

    Runs on the batch span processor's thread, like any exporter. The socket write is the only blocking
    call, bounded by SEND_TIMEOUT_S. When the relay cannot take a batch, `direct()` (the exporter the
    worker would use without a relay, built on first need) sends it instead."""

    def __init__(self, address: str, direct: Callable[[], SpanExporter]) -> None:
        self._address = address
        self._make_direct = direct
        self._direct: SpanExporter | None = None
        self._socket: socket.socket | None = None
        self._retry_at = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            payload = encode_span_request(spans)
        except Exception as error:  # as the official exporters: a batch that cannot be encoded is dropped
            log.error("Failed to encode span batch: %s", type(error).__name__)
            return SpanExportResult.FAILURE
        if len(payload) <= MAX_FRAME_BYTES and self._send(
            FRAME_HEADER.pack(len(payload), len(spans)) + payload
        ):
            return SpanExportResult.SUCCESS
        if self._direct is None:
            self._direct = self._make_direct()
        return self._direct.export(EncodedSpans(payload, len(spans)))

    def _send(self, frame: bytes) -> bool:
        if self._socket is None:
            if time.monotonic() < self._retry_at:
                return False
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(SEND_TIMEOUT_S)
            try:
                connection.connect(self._address)
            except OSError as exc:
                connection.close()
                self._give_up_for_now(exc)
                return False
            self._socket = connection
        try:
            self._socket.sendall(frame)
        except OSError as exc:
            self._socket.close()
            self._socket = None
            self._give_up_for_now(exc)
            return False
        return True

    def _give_up_for_now(self, exc: OSError) -> None:
        self._retry_at = time.monotonic() + RECONNECT_S
        log.warning(
            "span relay unavailable: this worker exports its spans itself for now",
            extra={"exception_type": type(exc).__name__, "retry_in_s": RECONNECT_S},
        )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here: what was written is the relay's

    def shutdown(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._direct is not None:
            self._direct.shutdown()

    def __repr__(self) -> str:
        return f"RelaySpanExporter({self._address!r})"


def relay_for(traces_endpoint: str, protocol: str) -> Relay | None:
    """The master's relay when it exports to the same place this worker would (same endpoint and
    protocol, both read from the same environment); None otherwise."""
    relay = _relay
    if relay is None or relay.traces_endpoint != traces_endpoint or relay.protocol != protocol:
        return None
    return relay
