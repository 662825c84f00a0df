"""`python -m bench.heap [--streams N] [--top K]`: where a held stream's memory goes, line by line (~1 min).

One worker, everything on, the emulator upstream; tracemalloc runs in the worker from the fork on
(bench/heap_hook, loaded through PYTHONPATH). After a warm-up of short streams (the first requests' lazily
built state is not a stream's cost) the worker dumps a snapshot; then N streams are opened at once and
held (10 chunks, 6 s apart), and once all are open it dumps another. The growth between the two, per held
stream, is attributed to the innermost frame in the gateway's code or in an installed package (what
called into the standard library or C): per package or module, and the top lines with their source.
tracemalloc counts the Python heap only and slows the worker down; RSS per stream is `bench.streams`.
Writes bench/.work/heap/heap.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import linecache
import re
import shutil
import tracemalloc
from pathlib import Path

from bench import streams
from bench.harness import Plan, Run
from bench.otlp_sink import OtlpSink
from bench.procs import ROOT, install_cleanup, wait_for
from bench.targets import gateway_target
from bench.upstream import MODEL_ANTHROPIC, configure_emulator, start_emulator

HOOK = Path(__file__).resolve().parent / "heap_hook"
CHUNKS = 10
HOLD_CHUNK_DELAY_S = 6.0
WARMUP_STREAMS = 50
WAIT_S = 300.0


def _snapshot(probe: Path, name: str, pid: int) -> tracemalloc.Snapshot:
    (probe / f"snap.{name}").touch()
    done = probe / f"done.{name}.{pid}"
    wait_for(done.exists, what=f"the {name} snapshot from worker {pid}", timeout=WAIT_S)
    return tracemalloc.Snapshot.load(str(probe / f"{name}.{pid}.snap"))


def owner_name(filename: str) -> str:
    """The package (site-packages), the gateway module, or the standard library module of a frame."""
    if match := re.search(r"site-packages/([^/]+)", filename):
        return match.group(1).removesuffix(".py")
    if match := re.search(r"/(llm_api/.+)$", filename):
        return match.group(1)
    if match := re.search(r"python3\.\d+/(.+)$", filename):
        return "stdlib " + match.group(1)
    return filename


def attribute(idle: tracemalloc.Snapshot, peak: tracemalloc.Snapshot) -> dict[tuple[str, int], int]:
    """Bytes grown between the snapshots per (file, line) of the innermost frame that is the gateway's or
    an installed package's (tracebacks run from the oldest frame to the newest)."""
    grown: collections.Counter[tuple[str, int]] = collections.Counter()
    for stat in peak.compare_to(idle, "traceback"):
        if stat.size_diff == 0:
            continue
        frames = list(stat.traceback)
        owner = next(
            (f for f in reversed(frames) if "site-packages" in f.filename or "/llm_api/" in f.filename),
            frames[-1],
        )
        grown[(owner.filename, owner.lineno)] += stat.size_diff
    return grown


def report(grown: dict[tuple[str, int], int], held: int, top: int) -> dict[str, object]:
    by_owner: collections.Counter[str] = collections.Counter()
    for (filename, _), size in grown.items():
        by_owner[owner_name(filename)] += size
    lines = sorted(grown.items(), key=lambda item: -item[1])[:top]
    return {
        "streams_held": held,
        "bytes_per_stream": round(sum(grown.values()) / held),
        "by_owner": {name: round(size / held) for name, size in by_owner.most_common() if size / held >= 20},
        "top_lines": [
            {
                "where": f"{owner_name(filename)}:{line}",
                "bytes_per_stream": round(size / held),
                "source": linecache.getline(filename, line).strip(),
            }
            for (filename, line), size in lines
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.heap", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    install_cleanup()
    plan = Plan(smoke=False, use_wrk=False, upstream="emulator", compare=False)
    run = Run(plan, ROOT / "bench/.work/heap", print)
    run.sink = OtlpSink().start()
    probe = run.workdir / "probe"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(parents=True)
    emulator = start_emulator(run.workdir / "emulator", config={"chunks": CHUNKS, "chunk_delay_s": 0.01})
    env = {"PYTHONPATH": str(HOOK), "HEAP_PROBE_DIR": str(probe), **streams.HOLD_ENV}
    server = run.gateway("heap", emulator, stream=True, extra_env=env)
    client = None
    try:
        target = gateway_target(server, model=MODEL_ANTHROPIC, stream=True)
        warm = streams.start_hold_client(
            target,
            streams=WARMUP_STREAMS,
            expect_deltas=CHUNKS,
            open_per_s=0,
            spec=run.workdir / "warmup.json",
        )
        if warm.wait(WAIT_S) != 0:
            raise RuntimeError(f"warm-up failed: {warm.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        configure_emulator(emulator, {"chunk_delay_s": HOLD_CHUNK_DELAY_S})
        pid = server.workers[0]
        idle = _snapshot(probe, "idle", pid)
        all_open = probe / "all-open"
        client = streams.start_hold_client(
            target,
            streams=args.streams,
            expect_deltas=CHUNKS,
            open_per_s=0,
            spec=run.workdir / "hold.json",
            open_file=all_open,
        )
        wait_for(all_open.exists, what=f"{args.streams} streams open at once", timeout=WAIT_S)
        peak = _snapshot(probe, "peak", pid)
    finally:
        if client is not None:
            client.terminate()
            client.wait(30)
        run.release(server)
        emulator.stop()
        run.sink.stop()
    out = report(attribute(idle, peak), args.streams, args.top)
    (run.workdir / "heap.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"Python heap per held stream: {out['bytes_per_stream']} B ({args.streams} streams, tracemalloc)")
    print("by owner (B per stream):")
    for name, size in out["by_owner"].items():  # type: ignore[attr-defined]
        print(f"  {size:6d}  {name}")
    print("top lines (B per stream):")
    for line in out["top_lines"]:  # type: ignore[attr-defined]
        print(f"  {line['bytes_per_stream']:6d}  {line['where']}: {line['source'][:100]}")


if __name__ == "__main__":
    main()
