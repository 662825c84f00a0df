"""Per-process memory from /proc: RSS, PSS (shared pages split between their sharers) and USS (pages only
this process maps, i.e. what another worker really adds).

A stand-in until bench.procs has `worker_memory(pid)` (branch memstreams); same shape, KiB.
"""

from __future__ import annotations

from pathlib import Path


def worker_memory(pid: int) -> dict[str, int] | None:
    """`{"rss": …, "pss": …, "uss": …}` in KiB from /proc/<pid>/smaps_rollup, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0])
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def mib(kib: int | float) -> float:
    return round(kib / 1024, 1)
