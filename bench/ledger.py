"""`python -m bench.ledger` (~20 s): what one usage-ledger batch costs a worker, in process.

The store of a gateway (`Store.open`, SQLite in a fresh folder, on uvloop) writes batches of 32 rows (the
default USAGE_BATCH_SIZE) as the ledger writer does; per batch it prints the CPU of the event-loop thread
(what delays the requests the loop is serving: the c=1 p99, docs/performance.md), of the whole process
(the loop, the SQLite thread, the kernel), and the wall time, with the rows prepared at the
insert and ahead (as the writer does, one row at a time as each joins its batch). `--rows` changes the
batch size, `--url` the database (e.g. a PostgreSQL URL).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
import uuid
from decimal import Decimal

import uvloop

from llm_api.store.ledger import UsageRow
from llm_api.store.store import Store


def _row() -> UsageRow:
    return UsageRow(
        request_id=uuid.uuid4().hex,
        time=dt.datetime.now(dt.UTC),
        key_id="k" * 24,
        endpoint="/v1/chat/completions",
        model_requested="gpt-4o",
        model_served="gpt-4o-2024-08-06",
        provider="openai",
        stream=False,
        status=200,
        error_type=None,
        input_tokens=12,
        output_tokens=30,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_usd=Decimal("0.000123"),
        price_version="bench",
        usage_estimated=False,
        attempts=1,
        latency_ms=1.23,
        ttft_ms=None,
    )


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, *, rows: int, batches: int, repeats: int) -> None:
    store = await Store.open(url)
    try:
        for _ in range(20):  # warm-up: connections opened, statements cached
            await store.ledger.insert([_row() for _ in range(rows)])
        for _ in range(repeats):
            for ahead in (False, True):
                work = [[_row() for _ in range(rows)] for _ in range(batches)]
                # As the ledger writer does: each row prepared as it joins the batch.
                values = [[store.ledger.prepare(r) for r in batch] for batch in work] if ahead else None
                cpu, loop, wall = _process_cpu_s(), time.thread_time(), time.perf_counter()
                for i, batch in enumerate(work):
                    await store.ledger.insert(batch, None if values is None else values[i])
                per = 1000 / batches
                print(
                    f"{rows}-row batch, rows prepared {'ahead' if ahead else 'at the insert'}: event-loop "
                    f"thread {(time.thread_time() - loop) * per:.3f} ms, "
                    f"process {(_process_cpu_s() - cpu) * per:.3f} ms of CPU, "
                    f"wall {(time.perf_counter() - wall) * per:.3f} ms"
                )
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--url", default=None, help="database URL (default: SQLite in a fresh folder)")
    args = parser.parse_args()
    url = args.url or f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-ledger-')}/ledger.db"
    uvloop.run(measure(url, rows=args.rows, batches=args.batches, repeats=args.repeats))


if __name__ == "__main__":
    main()
