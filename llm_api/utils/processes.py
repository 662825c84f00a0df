"""Child processes the gunicorn master forks for itself (the migration, the span relay)."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def wait_or_kill(pid: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for the child `pid` to exit, then SIGKILL and reap it. True when it exited
    in time (or was already reaped: gunicorn's master reaps every child it sees exit)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return False
