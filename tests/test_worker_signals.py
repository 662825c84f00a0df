"""A SIGTERM that reaches a worker before it resets its signal handlers ends it (llm_api.worker)."""

from __future__ import annotations

import signal
import subprocess
import sys

PROBE = """
import queue, signal, sys
from llm_api.worker import GatewayWorker
worker = GatewayWorker.__new__(GatewayWorker)  # init_signals needs no gunicorn state
worker.inherited_signals = queue.SimpleQueue()
for sig in sys.argv[1:]:
    worker.inherited_signals.put(int(sig))
worker.init_signals()
print("still running")
"""


def _run(*signals: int) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", PROBE, *map(str, signals)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_a_term_queued_before_the_handlers_were_reset_ends_the_worker() -> None:
    done = _run(signal.SIGCHLD, signal.SIGTERM)
    assert done.returncode == -signal.SIGTERM, (done.returncode, done.stdout, done.stderr)
    assert "still running" not in done.stdout


def test_other_queued_signals_are_left_alone() -> None:
    done = _run(signal.SIGCHLD, signal.SIGHUP)
    assert done.returncode == 0, done.stderr
    assert "still running" in done.stdout
