"""Loaded by the gateway processes `python -m bench.heap` starts (PYTHONPATH): tracemalloc in every forked
child, from the fork on, so that a snapshot holds only what that process allocated after it.

When the driver creates `snap.<name>` in HEAP_PROBE_DIR, each child dumps a snapshot to
`<name>.<pid>.snap` and then creates `done.<name>.<pid>`.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path

PROBE_DIR = os.environ.get("HEAP_PROBE_DIR")
FRAMES = int(os.environ.get("HEAP_PROBE_FRAMES", "12"))
POLL_S = 0.05


def _watch(probe: Path, pid: int) -> None:
    taken: set[str] = set()
    while True:
        for request in probe.glob("snap.*"):
            name = request.name.removeprefix("snap.")
            if name not in taken:
                tracemalloc.take_snapshot().dump(str(probe / f"{name}.{pid}.snap"))
                (probe / f"done.{name}.{pid}").touch()
                taken.add(name)
        time.sleep(POLL_S)


def _in_child() -> None:
    if PROBE_DIR:
        tracemalloc.start(FRAMES)
        threading.Thread(target=_watch, args=(Path(PROBE_DIR), os.getpid()), daemon=True).start()


os.register_at_fork(after_in_child=_in_child)
