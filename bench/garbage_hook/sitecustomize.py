"""Loaded by every gateway process `python -m bench.garbage` starts (PYTHONPATH): a probe in each forked
child that the driver steers with files in GARBAGE_PROBE_DIR.

For window N the driver creates `start.N`, waits for the probe's `ready.N.<pid>`, loads the worker and then
creates `stop.N`; in between the probe either times the GC's collections (`gc.callbacks`) or keeps
everything the cyclic GC finds (`gc.DEBUG_SAVEALL`), by the window's `mode.N` file ("timing" or
"garbage"). It writes `result.N.<pid>.json` when the window ends.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

PROBE_DIR = os.environ.get("GARBAGE_PROBE_DIR")
POLL_S = 0.02


def _kind(obj: object) -> str:
    kind = type(obj)
    if kind.__name__ in ("function", "method"):
        return f"{kind.__name__} {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
    if kind.__name__ == "frame":
        code = obj.f_code  # type: ignore[attr-defined]
        return f"frame {code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_name}"
    if kind.__name__ == "coroutine":
        return f"coroutine {getattr(obj, '__qualname__', '?')}"
    return f"{kind.__module__}.{kind.__qualname__}"


def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(POLL_S)


def _timing_window(stop: Path) -> dict[str, Any]:
    counts, seconds, longest = [0, 0, 0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        generation, took = info["generation"], time.perf_counter() - started[0]
        counts[generation] += 1
        seconds[generation] += took
        longest[generation] = max(longest[generation], took)

    gc.callbacks.append(on_gc)
    try:
        _wait_for(stop)
    finally:
        gc.callbacks.remove(on_gc)
    return {"collections": counts, "gc_s": seconds, "longest_s": longest}


def _garbage_window(stop: Path) -> dict[str, Any]:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        _wait_for(stop)
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    kinds = collections.Counter(_kind(obj) for obj in found)
    exceptions = sorted({_kind(obj) for obj in found if isinstance(obj, BaseException)})
    return {"objects": len(found), "kinds": kinds.most_common(25), "exceptions": exceptions}


def _probe(directory: Path) -> None:
    for window in range(1000):
        _wait_for(directory / f"start.{window}")
        mode = (directory / f"mode.{window}").read_text().strip()
        gc.collect()
        gc.garbage.clear()
        stop = directory / f"stop.{window}"
        (directory / f"ready.{window}.{os.getpid()}").touch()  # the driver starts its load after this
        result = _timing_window(stop) if mode == "timing" else _garbage_window(stop)
        out = directory / f"result.{window}.{os.getpid()}.json"
        out.with_suffix(".tmp").write_text(json.dumps(result))
        out.with_suffix(".tmp").rename(out)


def _in_child() -> None:
    if PROBE_DIR:
        threading.Thread(target=_probe, args=(Path(PROBE_DIR),), daemon=True).start()


os.register_at_fork(after_in_child=_in_child)
